"""Ephemeral conversation frames: published on ``subjects.eph_conv(conv)`` (core NATS) by
the service that produced them, fanned out by every gateway serving the conversation to
its local members' connections, never stored.

The payload is the server->client WebSocket frame itself (PROTOCOL §4), so a gateway
writes the same bytes to every recipient without re-encoding:
- ``receipt``: ``{type, conv, user_id, delivered_seq, read_seq}``, to every member's
  connections (the reader's other connections included); a live frame like an event.
- ``typing``: ``{type, conv, user_id, expires_in_ms}``, to the OTHER members' connections;
  droppable under backpressure (dropped before any event is refused).
- ``presence``: ``{type, user_id, status, last_seen}`` (no ``conv``: the subject names the
  conversation it is shared in), from the presence service, to the OTHER members'
  connections; droppable. A connection is not sent a presence frame with the same status
  for that user as the last one it got (a user in many shared conversations, or two
  presence replicas publishing the same change, reach a connection once).
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel

# Frame types a gateway relays from the ephemeral subject; anything else is ignored.
RELAYED = frozenset({"receipt", "typing", "presence"})
# Relayed only to connections of users other than the frame's ``user_id``.
OTHERS_ONLY = frozenset({"typing", "presence"})
# Dropped first when a connection's live queue is full.
DROPPABLE = frozenset({"typing", "presence"})


class ReceiptFrame(BaseModel):
    type: Literal["receipt"] = "receipt"
    conv: str
    user_id: str
    delivered_seq: int
    read_seq: int


class TypingOut(BaseModel):
    type: Literal["typing"] = "typing"
    conv: str
    user_id: str
    expires_in_ms: int = 5000


class PresenceOut(BaseModel):
    type: Literal["presence"] = "presence"
    user_id: str
    status: Literal["online", "offline"]
    # RFC 3339 ms; null for a user never seen
    last_seen: str | None


def encode(frame: ReceiptFrame | TypingOut | PresenceOut) -> bytes:
    return orjson.dumps(frame.model_dump())
