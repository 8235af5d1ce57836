"""Conversation log events: the same object on REST, WebSocket and the bus (``chat.evt.conv.*``)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from chat_proto.bounds import Size

EVENT_SCHEMA = "chat.event.v1"  # value of the Chat-Schema header on bus messages

EventKind = Literal["message", "edit", "delete", "member_joined", "member_left", "role_changed", "conversation_updated"]
Role = Literal["owner", "admin", "member", "guest"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member", "guest")
ROLE_RANK: dict[str, int] = {"owner": 3, "admin": 2, "member": 1, "guest": 0}


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    mime: str = Field(max_length=100)
    size: Size
    name: str | None = Field(default=None, max_length=200)  # the safe display name
    width: Size | None = None
    height: Size | None = None


class ConversationChanges(BaseModel):
    """What a ``conversation_updated`` event changed: only the fields that changed, with their
    new values (``topic``/``description`` "" when cleared)."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    topic: str | None = None
    description: str | None = None
    archived: bool | None = None


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    conv: str
    seq: int
    kind: EventKind
    sender: str
    ts: str
    client_msg_id: str | None = None
    body: str | None = None
    attachments: list[Attachment] | None = None
    reply_to: int | None = None
    target: int | None = None
    user_id: str | None = None
    role: Role | None = None
    deleted: bool | None = None
    # conversation_updated only (an additive member; clients ignore kinds they do not know)
    changes: ConversationChanges | None = None

    def to_wire(self) -> dict[str, Any]:
        d = self.model_dump(exclude_none=True)
        if self.deleted:  # a deleted message (or an edit of one): its text is gone
            d["body"] = None
            d["attachments"] = None
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_wire())


MEMBERSHIP_KINDS = frozenset({"member_joined", "member_left", "role_changed"})
