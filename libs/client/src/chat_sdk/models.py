"""Typed shapes of what the server sends (PROTOCOL §1-§4), as pydantic v2 models.

Unknown members are kept (``extra="allow"``) and unknown event kinds parse as the base
:class:`Event`, so a newer server never breaks an older SDK.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from chat_proto import ephemeral
from chat_proto import events as wire_events
from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class User(_Model):
    id: str
    username: str
    display_name: str | None = None


class Tokens(_Model):
    """An access/refresh token pair as returned by login/refresh, plus when it was received
    (``issued_at``, Unix seconds, this machine's clock) so it can be stored and reused."""

    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    issued_at: float = Field(default_factory=time.time)
    user: User | None = None

    @property
    def user_id(self) -> str | None:
        if self.user is not None:
            return self.user.id
        sub = _jwt_claims(self.access_token).get("sub")
        return sub if isinstance(sub, str) else None


def _jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (only to read ``sub``; never trusted)."""
    try:
        seg = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Member(_Model):
    user_id: str
    role: str


class Conversation(_Model):
    id: str
    kind: str
    name: str | None = None
    private: bool = False
    created_by: str | None = None
    created_at: str | None = None
    last_seq: int = 0
    role: str | None = None
    delivered_seq: int = 0
    read_seq: int = 0
    unread: int = 0
    members: list[Member] | None = None


# The wire shapes come from chat_proto (the server's own models). The SDK reads them
# leniently: unknown members are kept and a kind or role a newer server adds still parses.


class Attachment(wire_events.Attachment):
    """An attachment as a reader gets it: ``url`` / ``thumbnail_url`` are same-origin links
    signed for this reader, valid a few minutes (``ChatClient.download`` needs neither)."""

    model_config = ConfigDict(extra="allow")
    url: str | None = None
    thumbnail_url: str | None = None


class Upload(_Model):
    """What ``upload()`` answers (PROTOCOL §5)."""

    media_id: str
    mime: str
    size: int
    name: str
    width: int | None = None
    height: int | None = None
    url: str | None = None
    thumbnail_url: str | None = None


class Event(wire_events.Event):
    """One entry of a conversation's log. Subclasses by ``kind``; unknown kinds stay
    :class:`Event`."""

    model_config = ConfigDict(extra="allow")
    kind: str  # type: ignore[assignment]  # a kind a newer server adds still parses
    role: str | None = None  # type: ignore[assignment]
    attachments: list[Attachment] | None = None  # type: ignore[assignment]


class Message(Event):
    """``kind == "message"`` (``body`` is None and ``deleted`` True once deleted)."""


class Edit(Event):
    """``kind == "edit"``: ``target`` is the edited message's seq, ``body`` the new text."""


class Delete(Event):
    """``kind == "delete"``: ``target`` is the deleted message's seq."""


class MemberJoined(Event):
    """``user_id`` joined with ``role``."""


class MemberLeft(Event):
    """``user_id`` left or was removed."""


class RoleChanged(Event):
    """``user_id`` now has ``role``."""


class ConversationUpdated(Event):
    """``changes`` holds the fields that changed, with their new values."""


EVENT_KINDS: dict[str, type[Event]] = {
    "message": Message,
    "edit": Edit,
    "delete": Delete,
    "member_joined": MemberJoined,
    "member_left": MemberLeft,
    "role_changed": RoleChanged,
    "conversation_updated": ConversationUpdated,
}


def parse_event(data: dict[str, Any]) -> Event:
    cls = EVENT_KINDS.get(str(data.get("kind")), Event)
    return cls.model_validate(data)


class Receipt(ephemeral.ReceiptFrame):
    """A member's read/delivered watermark moved (not part of the log; not ordered)."""

    model_config = ConfigDict(extra="allow")


class Typing(ephemeral.TypingOut):
    model_config = ConfigDict(extra="allow")


class Presence(ephemeral.PresenceOut):
    model_config = ConfigDict(extra="allow")
    status: str  # type: ignore[assignment]  # a status a newer server adds still parses
    last_seen: str | None = None


#: What ``ChatClient.events()`` yields.
Item = Event | Receipt | Typing | Presence


def parse_live(frame: dict[str, Any]) -> Receipt | Typing | Presence | None:
    """A non-log live frame (receipt, typing, presence) as a model; None for other types."""
    cls = LIVE_TYPES.get(str(frame.get("type")))
    return cls.model_validate(frame) if cls is not None else None


LIVE_TYPES: dict[str, type[Receipt] | type[Typing] | type[Presence]] = {
    "receipt": Receipt,
    "typing": Typing,
    "presence": Presence,
}


class SendResult(_Model):
    """The acknowledgement of ``send()``: the seq the server assigned (the first one, for a
    replayed ``client_msg_id``)."""

    conv: str
    seq: int
    ts: str | None = None
    client_msg_id: str


class SearchHit(_Model):
    event: Event
    highlight: str


class SearchPage(_Model):
    """``search()``'s answer: hits most relevant first; ``next_cursor`` for the next page."""

    hits: list[SearchHit]
    next_cursor: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> SearchPage:
        hits = [SearchHit(event=parse_event(h["event"]), highlight=h.get("highlight", "")) for h in data["hits"]]
        return cls(hits=hits, next_cursor=data.get("next_cursor"))


class HistoryPage(_Model):
    events: list[Event]
    has_more: bool = False

    @classmethod
    def parse(cls, data: dict[str, Any]) -> HistoryPage:
        return cls(events=[parse_event(e) for e in data.get("events", [])], has_more=bool(data.get("has_more")))
