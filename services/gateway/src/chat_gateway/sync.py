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
- A connection runs one sync at a time (ws.py), so its frames cannot multiply this work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from chat_proto.messages_api import SYNC_CONVS_PER_CALL, SYNC_MAX_BYTES_PER_CALL
from chat_proto.replies import SyncReply

from chat_gateway.sync_budget import EVENT_RESERVE, SyncTicket

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
        conv, evs = item.conv, [e.wire() for e in item.events]
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
