"""Commands published by gateways into JetStream (``chat.cmd.*``) and their results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chat_proto.bounds import ClientMsgId, SeqRef
from chat_proto.events import Attachment, Event

COMMAND_SCHEMA = "chat.cmd.send.v1"
RESULT_SCHEMA = "chat.cmd.results.v1"

ID = r"^[A-Za-z0-9_-]{1,64}$"


class SendCommand(BaseModel):
    """Post a message. ``sender`` is set by the gateway from the verified token."""

    model_config = ConfigDict(extra="forbid")
    v: Literal[1] = 1
    conv: str = Field(pattern=ID)
    sender: str = Field(pattern=ID)
    client_msg_id: ClientMsgId
    body: str = Field(max_length=64 * 1024)
    attachments: list[Attachment] | None = Field(default=None, max_length=10)
    reply_to: SeqRef | None = None
    # Where to publish the CommandResult (a gateway's results subject); optional.
    reply_subject: str | None = None


class CommandResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    v: Literal[1] = 1
    conv: str
    sender: str
    client_msg_id: str
    ok: bool
    created: bool = False  # False when an earlier event with this key was returned
    event: Event | None = None
    error: dict[str, Any] | None = None


class CommandResults(BaseModel):
    """What a gateway's results subject receives: the results of one committed batch for
    the commands that gateway sent (``Chat-Schema: chat.cmd.results.v1``)."""

    model_config = ConfigDict(extra="ignore")
    v: Literal[1] = 1
    results: list[CommandResult]


def msg_id(conv: str, sender: str, client_msg_id: str) -> str:
    """The Nats-Msg-Id header of a send command (JetStream's de-duplication key).

    The conversation is part of the key: the store's idempotency key is
    ``(conv, sender, client_msg_id)``, so the same client_msg_id in two
    conversations is two messages, and JetStream must not drop the second.
    """
    return f"{conv}:{sender}:{client_msg_id}"
