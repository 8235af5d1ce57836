"""What RPC operations answer (``chat_proto.ops`` pairs each with its request).

Replies are read as sent: unknown members are kept (``extra="allow"``) and ``wire()`` gives
back exactly the members that were there, so a gateway that passes a reply on to a client
sends what the owning service answered, no more and no less.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from chat_proto.auth_api import UserOut, UserRevoked
from chat_proto.presence import PresenceEntry


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")

    def wire(self) -> dict[str, Any]:
        """The reply as the service sent it (members it did not send are left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class Done(Reply):
    """An operation that answers nothing but success."""


# --- auth ---------------------------------------------------------------------------------------
class Registered(Reply):
    user: UserOut


class Jwks(Reply):
    keys: list[dict[str, Any]]


class Missing(Reply):
    missing: list[str]


class UserPage(Reply):
    users: list[UserOut]
    next_cursor: str | None = None


class Revocations(Reply):
    revocations: list[UserRevoked]


# --- messages -----------------------------------------------------------------------------------
class WireEvent(Reply):
    """An event as on the wire (``chat_proto.events.Event.to_wire``)."""

    conv: str
    seq: int
    kind: str
    sender: str
    ts: str


class Member(Reply):
    user_id: str
    role: str


class Conversation(Reply):
    id: str
    kind: Literal["channel", "dm", "group"]
    name: str | None = None
    private: bool = False
    created_by: str = ""
    created_at: str = ""
    last_seq: int = 0
    role: str | None = None
    delivered_seq: int = 0
    read_seq: int = 0
    unread: int = 0
    members: list[Member] | None = None


class Created(Reply):
    conversation: Conversation
    created: bool


class Changed(Reply):
    conversation: Conversation
    changed: bool


class ConversationReply(Reply):
    conversation: Conversation


class Conversations(Reply):
    conversations: list[Conversation]


class ChannelPage(Reply):
    channels: list[Conversation]
    next_cursor: str | None = None


class History(Reply):
    events: list[WireEvent]
    has_more: bool


class Events(Reply):
    events: list[WireEvent]


class SyncConv(Reply):
    conv: str
    # Wire events as the messages service sent them (``Event.to_wire``), not read into
    # ``WireEvent`` models: a sync call carries up to thousands, and the gateway only passes
    # them on (bench/history.py: validating and dumping 2,000 cost ~10 ms of its CPU).
    events: list[dict[str, Any]]
    has_more: bool


class SyncReply(Reply):
    convs: list[SyncConv]
    not_found: list[str]
    rest: list[str]


class UserConv(Reply):
    id: str
    last_seq: int
    role: str


class UserConvs(Reply):
    convs: list[UserConv]


class ConvPosition(Reply):
    id: str
    last_seq: int


class ConvPositions(Reply):
    convs: list[ConvPosition]
    next: str | None
    """The ``after`` of the next page; None on the last."""


class ConvIds(Reply):
    convs: list[str]


class UserIds(Reply):
    user_ids: list[str]


class PresenceConvsReply(Reply):
    convs: dict[str, list[str]]


class ChangedCount(Reply):
    changed: int


class ChangedFlag(Reply):
    changed: bool


class Receipt(Reply):
    user_id: str
    delivered_seq: int
    read_seq: int


class Receipts(Reply):
    receipts: list[Receipt]


class Block(Reply):
    user_id: str
    created_at: str


class Blocks(Reply):
    blocks: list[Block]


class PrivacySettingsReply(Reply):
    group_invites: Literal["everyone", "shared"]


# --- presence -----------------------------------------------------------------------------------
class PresenceReply(Reply):
    presence: list[PresenceEntry]
