"""RPC API of the messages service (subjects ``svc.messages.<op>``).

The acting user travels in the ``Chat-User`` header (set by the gateway after it
verified the token); ops under ``internal.*`` act as the system and are only for
gateways (gap filling, connection set-up).

- ``conv.create``        CreateConversation -> {"conversation": Conversation, "created": bool}
- ``conv.list``          Empty              -> {"conversations": [Conversation]}
- ``conv.get``           ConvRef            -> Conversation with "members"
- ``conv.join``          ConvRef            -> {"conversation": Conversation, "changed": bool}
- ``conv.add_member``    AddMember          -> {"conversation": Conversation, "changed": bool}
- ``conv.remove_member`` MemberRef          -> {}
- ``conv.set_role``      SetRole            -> {"conversation": Conversation}
- ``conv.update``        UpdateConversation -> {"conversation": Conversation, "changed": bool}
- ``conv.archive``       SetArchived        -> {"conversation": Conversation, "changed": bool}
- ``channels.list``      ChannelQuery       -> {"channels": [Conversation + "member_count"], "next_cursor"}
- ``history``            HistoryQuery       -> {"events": [Event], "has_more": bool}
- ``sync``               SyncQuery          -> {"convs": [{"conv", "events": [Event], "has_more"}], "not_found": [conv],
  "rest": [conv]} a connection's catch-up for many conversations in one call (members only)
- ``lookup_send``        LookupSend         -> Event (not_found until stored)
- ``internal.user_convs`` UserRef           -> {"convs": [{"id", "last_seq", "role"}]}
- ``internal.shared_with`` SharedWith       -> {"user_ids": [...]} those sharing a conversation with ``user_id``
  (``user_id`` itself included)
- ``internal.presence_convs`` PresenceConvs -> {"convs": {user_id: [conv]}} each user's dms, groups and channels of
  2..``max_members`` members (where presence changes are pushed)
- ``internal.events``    EventsRange        -> {"events": [Event]}
- ``internal.receipts``  ReceiptBatch       -> {"changed": int}  (gateways' coalesced watermarks)
- ``receipts.list``      ConvRef            -> {"receipts": [{"user_id", "delivered_seq", "read_seq"}]}
- ``receipts.set``       SetReceipt         -> {"changed": bool}
- ``msg.edit``           EditMessage        -> Event (the new ``edit`` event)
- ``msg.delete``         MessageRef         -> Event (the ``delete`` event, new or the existing one)
- ``blocks.add``         BlockRef           -> {}   (``blocks.remove`` likewise; idempotent)
- ``blocks.list``        Empty              -> {"blocks": [{"user_id", "created_at"}]}
- ``settings.get``       Empty              -> PrivacySettings (``settings.set`` PrivacySettings -> the same)
- ``conv.hide``          ConvRef            -> {}   off the caller's list until the next event
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chat_proto.bounds import ClientMsgId, Seq, SeqRef
from chat_proto.errors import ChatError, ErrorCode

ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_BODY_CODEPOINTS = 4000


# C0 controls but tab, line feed and carriage return, and DEL: never part of a message
# (PostgreSQL text cannot even store NUL).
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_body(body: str, max_codepoints: int = MAX_BODY_CODEPOINTS, *, allow_empty: bool = False) -> str:
    """Control characters (but tab and line breaks) removed, trimmed of surrounding
    whitespace; 1..max code points (empty 422, longer 413); 0..max for a message with
    attachments (``allow_empty``)."""
    text = _BODY_CONTROL.sub("", body).strip()
    if not text and not allow_empty:
        raise ChatError(ErrorCode.INVALID, "body must not be empty")
    if len(text) > max_codepoints:
        raise ChatError(ErrorCode.TOO_LARGE, f"body longer than {max_codepoints} characters")
    return text


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateConversation(_Req):
    """A channel has a ``name`` (1..80 characters once cleaned); a dm one other user in
    ``members`` (or only the caller), a group other users; unknown users are refused."""

    # What the messages service requires of every request (the rest depends on who asks).
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": "channel"}}},
                    "then": {"required": ["name"], "properties": {"name": {"type": "string"}}},
                },
                {
                    "if": {"properties": {"kind": {"enum": ["dm", "group"]}}},
                    "then": {"required": ["members"], "properties": {"members": {"minItems": 1}}},
                },
            ]
        }
    )
    kind: Literal["channel", "dm", "group"]
    name: str | None = Field(default=None, max_length=400)
    private: bool | None = None
    members: list[str] = Field(default_factory=list, max_length=1000)


class ConvRef(_Req):
    conv: str = Field(pattern=ID)


class AddMember(_Req):
    conv: str = Field(pattern=ID)
    user_id: str = Field(max_length=64)
    role: Literal["admin", "member", "guest", "owner"] | None = None


class MemberRef(_Req):
    conv: str = Field(pattern=ID)
    user_id: str = Field(max_length=64)


class SetRole(_Req):
    conv: str = Field(pattern=ID)
    user_id: str = Field(max_length=64)
    role: Literal["owner", "admin", "member", "guest"]


class UpdateConversation(_Req):
    """None: unchanged. ``topic``/``description`` "" clear. Raw lengths bounded here; the
    cleaned text is checked against the real limits (name 80, topic 250, description 1000)."""

    conv: str = Field(pattern=ID)
    name: str | None = Field(default=None, max_length=400)
    topic: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=4000)


class SetArchived(_Req):
    conv: str = Field(pattern=ID)
    archived: bool


class ChannelQuery(_Req):
    """The public channel directory: ``q`` a case-insensitive substring of the name."""

    q: str | None = Field(default=None, max_length=400)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=1000)


class HistoryQuery(_Req):
    conv: str = Field(pattern=ID)
    before: Seq | None = None
    after: Seq | None = None
    limit: int = Field(default=50, ge=1, le=200)
    # Only members may read (sync); public-channel readers are refused.
    members_only: bool = False


SYNC_CONVS_PER_CALL = 100
SYNC_MAX_PER_CONV = 500
# An RPC reply travels in one NATS message (1 MiB by default): the events of one call stay
# well under it.
SYNC_MAX_BYTES_PER_CALL = 512 * 1024


class SyncPosition(_Req):
    conv: str = Field(pattern=ID)
    after: Seq


class SyncQuery(_Req):
    """The caller's conversations among ``positions`` (in order), each from its ``after``: at
    most ``per_conv`` events each and ``max_bytes`` of event JSON in all. Conversations the
    caller is not a member of are listed in ``not_found``; those not reached once the bytes
    ran out in ``rest`` (ask again); a conversation cut short has ``has_more``."""

    positions: list[SyncPosition] = Field(min_length=1, max_length=SYNC_CONVS_PER_CALL)
    per_conv: int = Field(ge=1, le=SYNC_MAX_PER_CONV)
    max_bytes: int = Field(ge=1, le=SYNC_MAX_BYTES_PER_CALL)


class LookupSend(_Req):
    conv: str = Field(pattern=ID)
    client_msg_id: ClientMsgId


class UserRef(_Req):
    user_id: str = Field(max_length=64)


class EventsRange(_Req):
    conv: str = Field(pattern=ID)
    after: Seq
    before: SeqRef | None = None
    limit: int = Field(default=200, ge=1, le=500)


class ConvScan(_Req):
    """Every conversation, by id, a page at a time (``after`` the last id of the previous page):
    the search service's rebuild reads the whole store this way."""

    after: str | None = Field(default=None, pattern=ID)
    limit: int = Field(default=500, ge=1, le=1000)


class SharedWith(_Req):
    user_id: str = Field(max_length=64)
    user_ids: list[str] = Field(max_length=100)


class Readable(_Req):
    """Which of ``convs`` ``user_id`` may read (a member, or any user of a public channel):
    the media service's question before it serves an attachment."""

    user_id: str = Field(max_length=64)
    convs: list[str] = Field(max_length=1000)


class PresenceConvs(_Req):
    user_ids: list[str] = Field(max_length=1000)
    max_members: int = Field(default=100, ge=2, le=100_000)


class Empty(_Req):
    pass


class ReceiptUpdate(_Req):
    """One member's watermarks in one conversation; None: not reported (unchanged)."""

    conv: str = Field(pattern=ID)
    user_id: str = Field(pattern=ID)
    delivered_seq: Seq | None = None
    read_seq: Seq | None = None


class ReceiptBatch(_Req):
    """What a gateway coalesced within one window (highest value per (user, conv))."""

    updates: list[ReceiptUpdate] = Field(max_length=2000)


class SetReceipt(_Req):
    """The caller's own watermarks (REST ``POST …/receipts``); at least one is required."""

    conv: str = Field(pattern=ID)
    delivered_seq: Seq | None = None
    read_seq: Seq | None = None


class MessageRef(_Req):
    conv: str = Field(pattern=ID)
    seq: Seq


class EditMessage(_Req):
    conv: str = Field(pattern=ID)
    seq: Seq
    body: str = Field(max_length=64 * 1024)


class BlockRef(_Req):
    user_id: str = Field(pattern=ID)


class PrivacySettings(_Req):
    """Who may put the caller into a group: anyone, or people who share a conversation."""

    group_invites: Literal["everyone", "shared"]


class UserNotice(BaseModel):
    """Published on ``chat.notify.user.<user>`` (core NATS) for gateways."""

    v: Literal[1] = 1
    kind: Literal["membership"] = "membership"
    conv: str
    event: dict  # type: ignore[type-arg]  # the wire event object
