"""Reconnect catch-up (PROTOCOL §4 ``sync``): fetch what a connection missed in many
conversations with few calls, within the connection's replay memory.

- One ``svc.messages.sync`` call covers up to ``SYNC_CONVS_PER_CALL`` conversations and at
  most ``SYNC_MAX_BYTES_PER_CALL`` bytes of event JSON (the messages service stops there and
  says which conversations it did not reach), so a ``sync`` listing 1,000 conversations
  costs about ten calls, not 1,000.
- The bytes of each call are reserved from the connection's ``SyncBudget`` first and
  settled at what came back; once less than one largest event is left, the conversations
  not fetched yet are listed in ``truncated`` (the client pages them over REST).
- Each conversation gets at most ``max_events``; one with more is ``truncated``.
- A connection runs one sync at a time (``ConnectionSync``), so its frames cannot multiply
  this work.

Order and at-most-once (``ConnectionSync.answer``): live events of every listed
conversation are held from the moment the frame is handled; the replay is filtered as it
is queued against what the connection already got (``Connection.replayable``), then
``sync_done``, then the held live events are released behind it (``Connection.end_replay``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from chat_proto import frames as F
from chat_proto.messages_api import SYNC_CONVS_PER_CALL, SYNC_MAX_BYTES_PER_CALL
from chat_proto.replies import SyncReply

from chat_gateway.answers import Answer
from chat_gateway.connection import Connection
from chat_gateway.ports import MessagesApi
from chat_gateway.sync_budget import EVENT_RESERVE, SyncBudget, SyncTicket

Event = dict[str, Any]
# (positions, per_conv, max_bytes) -> the messages service's reply
SyncCall = Callable[[list[tuple[str, int]], int, int], Awaitable[SyncReply]]


@dataclass
class Replay:
    events: dict[str, list[Event]] = field(default_factory=dict)  # in the order of the positions
    truncated: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    def replayed_to(self, conv: str) -> int:
        """The last seq replayed for ``conv`` (0: nothing)."""
        evs = self.events.get(conv)
        return int(evs[-1]["seq"]) if evs else 0


async def fetch(call: SyncCall, positions: dict[str, int], ticket: SyncTicket, max_events: int) -> Replay:
    out = Replay()
    pending: deque[tuple[str, int]] = deque(positions.items())
    while pending:
        max_bytes = ticket.reserve(SYNC_MAX_BYTES_PER_CALL)
        if max_bytes < EVENT_RESERVE:  # the connection's replay memory is spent
            ticket.settle(max_bytes, 0)
            out.truncated.extend(conv for conv, _ in pending)
            break
        batch = [pending.popleft() for _ in range(min(len(pending), SYNC_CONVS_PER_CALL))]
        per_conv = max(max_events - len(out.events.get(conv, ())) for conv, _ in batch)
        try:
            res = await call(batch, per_conv, max_bytes)
        except BaseException:
            ticket.settle(max_bytes, 0)  # the reservation is free again
            raise
        after = dict(batch)
        used, again = _take(out, res, max_events, after)
        ticket.settle(max_bytes, used)
        again += [(conv, after[conv]) for conv in res.rest]
        pending.extendleft(reversed(again))
        out.not_found += res.not_found
    return out


def _take(out: Replay, res: SyncReply, max_events: int, after: dict[str, int]) -> tuple[int, list[tuple[str, int]]]:
    """Add one reply's events; returns their bytes and the conversations to continue."""
    used = 0
    again: list[tuple[str, int]] = []
    for item in res.convs:
        conv, evs = item.conv, item.events
        have = out.events.setdefault(conv, [])
        room = max_events - len(have)
        taken = evs[:room]
        have.extend(taken)
        used += len(orjson.dumps(taken))
        if len(evs) > room or (item.has_more and len(have) >= max_events):
            out.truncated.append(conv)
        elif item.has_more:
            again.append((conv, int(have[-1]["seq"]) if have else after[conv]))
    return used, again


class ConnectionSync:
    """The ``sync`` frames of one connection: one at a time, within its replay memory."""

    def __init__(
        self,
        conn: Connection,
        messages: MessagesApi,
        max_bytes: int,
        max_events: int,
        personalize: Callable[[Event, str], Event] | None = None,
    ) -> None:
        self.conn = conn
        self.personalize = personalize  # signed media URLs for this reader (media_urls.py)
        self.messages = messages
        self.budget = SyncBudget(max_bytes)  # replayed events held, all syncs
        self.max_events = max_events
        self._lock = asyncio.Lock()

    async def answer(self, frame: F.SyncFrame) -> Answer:
        # Hold live events of every listed conversation now, in frame order (also those this
        # connection is about to start receiving, e.g. just joined over REST).
        for conv in frame.positions:
            self.conn.begin_replay(conv)
        ticket = SyncTicket(self.budget)
        try:
            async with self._lock:
                replay = await fetch(self._call, frame.positions, ticket, self.max_events)
        except BaseException:  # refused, bus errors, cancellation: never stay held
            self._release(frame, None, ticket)
            raise
        done = F.SyncDone(truncated=replay.truncated, not_found=replay.not_found, ref=frame.ref).text()

        def frames() -> list[str]:
            sign = self.personalize
            out = [
                F.encode({"type": "event", "event": sign(e, self.conn.user) if sign and e.get("attachments") else e})
                for conv, evs in replay.events.items()
                for e in evs
                if self.conn.replayable(conv, e["seq"])
            ]
            out.append(done)
            return out

        return frames, lambda: self._release(frame, replay, ticket)

    async def _call(self, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> SyncReply:
        return await self.messages.sync(self.conn.user, positions, per_conv, max_bytes)

    def _release(self, frame: F.SyncFrame, replay: Replay | None, ticket: SyncTicket) -> None:
        ticket.release()
        for conv in frame.positions:
            # Nothing replayed (0): a position the client claims beyond the log's end must
            # not mute the conversation's next live events here.
            self.conn.end_replay(conv, replay.replayed_to(conv) if replay is not None else 0)
