"""Presence on the bus (PROTOCOL §4 ``presence`` frames, §5 presence).

Gateways report who is connected; every presence replica listens and derives who is online.

- ``GatewayReport`` on ``subjects.presence_hb(gateway_id)`` (core NATS, no queue group):
  - ``full`` every ``interval_s``: every user with at least one authenticated connection on
    that gateway. Large lists come in ``parts`` (published back to back; one ``snapshot``
    number); the set is replaced when the last part arrives, a snapshot missing a part is
    dropped (the next one comes an interval later).
  - ``delta`` within ~200 ms of a change: ``users`` whose first connection authenticated,
    ``gone`` whose last connection closed (net changes of the batching window).
  - ``bye`` when the gateway shuts down cleanly: it serves nobody any more.
  ``ts`` is the gateway's clock when the report was made (RFC 3339, ms); a presence replica
  uses it as the users' ``last_seen``, so every replica computes the same value.
- ``PresenceQuery`` is the RPC ``svc.presence.query`` (queue group ``svc-presence``; the
  caller in the ``Chat-User`` header) -> ``{"presence": [PresenceEntry]}``.
- Status changes reach clients as ``PresenceOut`` frames (``chat_proto.ephemeral``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ID = r"^[A-Za-z0-9_-]{1,64}$"
# Users per part of a full report (~70 KB): far below NATS's default 1 MiB payload limit.
PART_USERS = 2000
MAX_QUERY_IDS = 100


class GatewayReport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    gateway_id: str = Field(pattern=ID)
    kind: Literal["full", "delta", "bye"]
    # The gateway's heartbeat interval: it counts as dead after a few of them in silence.
    interval_s: float = Field(gt=0, le=3600)
    ts: str = Field(max_length=40)
    snapshot: int = Field(default=0, ge=0)
    part: int = Field(default=0, ge=0)
    parts: int = Field(default=1, ge=1, le=100_000)
    # full: the users (of this part); delta: users now online here
    users: list[str] = Field(default_factory=list, max_length=PART_USERS)
    # delta: users no longer online here
    gone: list[str] = Field(default_factory=list, max_length=PART_USERS)


class PresenceQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_ids: list[str] = Field(min_length=1, max_length=MAX_QUERY_IDS)


class PresenceEntry(BaseModel):
    user_id: str
    status: Literal["online", "offline"]
    last_seen: str | None


def encode_report(report: GatewayReport) -> bytes:
    return report.model_dump_json().encode()
