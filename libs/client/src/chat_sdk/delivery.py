"""From frames to the app: every log event goes through the :class:`Sequencer` (exactly once,
in seq order per conversation) into one queue the app reads with ``client.events()``.

Gaps: an event beyond ``last + 1`` is held. If the gap is still there after ``hold_s`` (the
server fills most gaps itself within a second), the missing range is fetched over REST
(``GET …/messages?after=last``) and the held events follow. Only when the log itself has
nothing in the gap (REST reached its end, or the conversation is no longer readable) does
delivery skip ahead. Conversations being replayed by ``sync`` are not gap-filled until
their ``sync_done``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chat_sdk.errors import ChatError, Forbidden, NotFound, error_from_frame
from chat_sdk.models import Event, HistoryPage, Item
from chat_sdk.ordering import Sequencer

log = logging.getLogger("chat_sdk.delivery")

# (conv, after) -> the page of events with seq > after, oldest first
Fetcher = Callable[[str, int], Awaitable[HistoryPage]]
# (frame, timeout) -> the server's answer to it
Requester = Callable[[dict[str, Any], float], Awaitable[dict[str, Any]]]
SYNC_CHUNK = 500  # conversations per `sync` frame (a frame is at most 64 KiB)


class End:
    """Queued when the client stops; carries the error that ended the session, if any."""

    def __init__(self, error: ChatError | None) -> None:
        self.error = error


class Delivery:
    def __init__(self, fetch: Fetcher, *, hold_s: float = 0.5, retry_s: float = 1.0) -> None:
        self._fetch = fetch
        self.hold_s = hold_s
        self.retry_s = retry_s
        self.order: Sequencer[Event] = Sequencer()
        self.queue: asyncio.Queue[Item | End] = asyncio.Queue()
        self.syncing: set[str] = set()
        self._fills: dict[str, asyncio.Task[None]] = {}
        self.stats = {"delivered": 0, "gaps_filled": 0, "gaps_skipped": 0, "catch_ups": 0}

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    # -- input ----------------------------------------------------------------------
    def offer(self, ev: Event) -> None:
        """A log event from anywhere (live, sync replay, REST)."""
        self._put(self.order.offer(ev, self._now()))
        self.check(ev.conv)

    def offer_all(self, evs: list[Event]) -> None:
        self._put(self.order.offer_all(evs, self._now()))
        for conv in {e.conv for e in evs}:
            self.check(conv)

    def passthrough(self, item: Item) -> None:
        """Receipts, typing, presence: not part of any log, delivered as they come."""
        self.queue.put_nowait(item)

    def end(self, error: ChatError | None) -> None:
        for t in self._fills.values():
            t.cancel()
        self.queue.put_nowait(End(error))

    def _put(self, out: list[Event]) -> None:
        self.stats["delivered"] += len(out)
        for e in out:
            self.queue.put_nowait(e)

    # -- gaps -----------------------------------------------------------------------
    def check(self, conv: str) -> None:
        """Start the gap filler of ``conv`` if it has a gap and none is running."""
        if self.order.gap(conv) is None or conv in self.syncing or conv in self._fills:
            return
        task = asyncio.get_running_loop().create_task(self._fill_later(conv), name=f"chat_sdk.gap.{conv}")
        self._fills[conv] = task
        task.add_done_callback(lambda _t: self._fill_done(conv, _t))

    def _fill_done(self, conv: str, task: asyncio.Task[None]) -> None:
        if self._fills.get(conv) is task:
            del self._fills[conv]
        if not task.cancelled():
            self.check(conv)  # a new gap may have opened while the filler finished

    async def _fill_later(self, conv: str) -> None:
        await asyncio.sleep(self.hold_s)
        while (gap := self.order.gap(conv)) is not None and conv not in self.syncing:
            try:
                await self._fill_gap(conv, gap)
            except (NotFound, Forbidden):  # not readable any more: nothing can fill it
                self._skip(conv, gap)
            except ChatError as exc:  # transient (gateway down, 503): try again later
                log.info("gap fill of %s failed (%s); retrying", conv, exc)
                await asyncio.sleep(self.retry_s)

    async def _fill_gap(self, conv: str, gap: tuple[int, int]) -> None:
        page = await self._fetch(conv, gap[0])
        self.offer_all_quiet(page.events)
        now = self.order.gap(conv)
        if now is None or now[0] >= gap[1] - 1:
            self.stats["gaps_filled"] += 1
        elif not page.has_more or now == gap:
            self._skip(conv, now)  # the log has nothing more in this range

    def offer_all_quiet(self, evs: list[Event]) -> None:
        """Like :meth:`offer_all` without starting gap fillers (the caller is one)."""
        self._put(self.order.offer_all(evs, self._now()))

    def _skip(self, conv: str, gap: tuple[int, int]) -> None:
        log.warning("conversation %s: seq %d..%d not in the log; skipping", conv, gap[0] + 1, gap[1] - 1)
        self.stats["gaps_skipped"] += 1
        self._put(self.order.skip_to(conv, gap[1], self._now()))

    # -- catching up ----------------------------------------------------------------
    async def catch_up(self, conv: str, *, max_pages: int = 1000) -> None:
        """Page ``GET …/messages?after=`` from the conversation's position to the end of its
        log (after a truncated ``sync``)."""
        self.stats["catch_ups"] += 1
        for _ in range(max_pages):
            order = self.order.convs.get(conv)
            if order is None:
                return
            try:
                page = await self._fetch(conv, order.last)
            except (NotFound, Forbidden):  # no longer readable: nothing to catch up
                return
            self.offer_all_quiet(page.events)
            if not page.has_more or not page.events:
                return

    async def sync(self, request: Requester, timeout: float) -> None:
        """``sync`` every conversation from its position (PROTOCOL §4), then page the
        truncated ones over REST. Gap filling of those conversations waits until done."""
        positions = self.order.positions()
        self.syncing.update(positions)
        truncated: list[str] = []
        try:
            items = list(positions.items())
            for i in range(0, len(items), SYNC_CHUNK):
                reply = await request({"type": "sync", "positions": dict(items[i : i + SYNC_CHUNK])}, timeout)
                if reply.get("type") != "sync_done":
                    raise error_from_frame(reply)
                for conv in reply.get("not_found") or []:
                    self.order.forget(conv)  # no longer a member
                truncated.extend(reply.get("truncated") or [])
            for conv in truncated:
                await self.catch_up(conv)
        finally:
            self.syncing.difference_update(positions)
            for conv in positions:
                self.check(conv)
