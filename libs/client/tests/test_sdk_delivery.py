"""Gap handling of the delivery layer (chat_sdk.delivery) with an in-memory log standing in
for ``GET …/messages?after=`` (the real REST path is covered by tests/integration/test_sdk.py)."""

from __future__ import annotations

import asyncio

from chat_sdk.delivery import Delivery, End
from chat_sdk.errors import NotFound, Unavailable
from chat_sdk.models import Event, HistoryPage, Message


def ev(seq: int, conv: str = "c") -> Message:
    return Message(conv=conv, seq=seq, kind="message", sender="u", ts="2026-12-06T10:00:00.000Z", body=f"m{seq}")


class Log:
    def __init__(self, n: int, *, page: int = 200) -> None:
        self.events = [ev(i) for i in range(1, n + 1)]
        self.page = page
        self.calls: list[tuple[str, int]] = []
        self.errors: list[Exception] = []

    async def fetch(self, conv: str, after: int) -> HistoryPage:
        self.calls.append((conv, after))
        if self.errors:
            raise self.errors.pop(0)
        evs = [e for e in self.events if e.seq > after][: self.page]
        return HistoryPage(events=list(evs), has_more=bool(evs) and evs[-1].seq < self.events[-1].seq)


def drain(d: Delivery) -> list[int]:
    out = []
    while not d.queue.empty():
        item = d.queue.get_nowait()
        assert isinstance(item, Event)
        out.append(item.seq)
    return out


async def test_gap_is_filled_over_rest_after_the_hold() -> None:
    log = Log(6, page=2)
    d = Delivery(log.fetch, hold_s=0.05)
    d.order.start("c", 0)
    for s in (1, 2, 5, 6, 2):
        d.offer(ev(s))
    assert drain(d) == [1, 2]
    assert log.calls == []  # held, not fetched yet
    await asyncio.sleep(0.2)
    assert drain(d) == [3, 4, 5, 6]
    assert log.calls[0] == ("c", 2)
    assert d.stats["gaps_filled"] >= 1 and d.stats["gaps_skipped"] == 0


async def test_gap_closed_by_a_late_event_needs_no_fetch() -> None:
    log = Log(3)
    d = Delivery(log.fetch, hold_s=0.1)
    d.order.start("c", 0)
    d.offer(ev(1))
    d.offer(ev(3))
    d.offer(ev(2))
    await asyncio.sleep(0.2)
    assert drain(d) == [1, 2, 3] and log.calls == []


async def test_missing_range_not_in_the_log_is_skipped() -> None:
    log = Log(0)  # the log has nothing to give (e.g. events before we could read them)
    log.events = [ev(1), ev(5)]
    d = Delivery(log.fetch, hold_s=0.01)
    d.order.start("c", 0)
    d.offer(ev(1))
    d.offer(ev(5))
    await asyncio.sleep(0.1)
    assert drain(d) == [1, 5] and d.stats["gaps_skipped"] == 1


async def test_transient_fetch_errors_are_retried_not_skipped() -> None:
    log = Log(4)
    log.errors = [Unavailable("down"), Unavailable("still down")]
    d = Delivery(log.fetch, hold_s=0.01, retry_s=0.02)
    d.order.start("c", 0)
    d.offer(ev(1))
    d.offer(ev(4))
    await asyncio.sleep(0.2)
    assert drain(d) == [1, 2, 3, 4] and d.stats["gaps_skipped"] == 0 and len(log.calls) == 3


async def test_unreadable_conversation_skips_the_gap() -> None:
    log = Log(4)
    log.errors = [NotFound("removed")]
    d = Delivery(log.fetch, hold_s=0.01)
    d.order.start("c", 0)
    d.offer(ev(1))
    d.offer(ev(4))
    await asyncio.sleep(0.1)
    assert drain(d) == [1, 4]


async def test_no_gap_fill_while_the_conversation_is_being_synced() -> None:
    log = Log(3)
    d = Delivery(log.fetch, hold_s=0.01)
    d.order.start("c", 0)
    d.syncing.add("c")
    d.offer(ev(3))
    await asyncio.sleep(0.05)
    assert log.calls == []
    d.offer_all([ev(1), ev(2)])  # the replay
    d.syncing.discard("c")
    d.check("c")
    assert drain(d) == [1, 2, 3]


async def test_catch_up_pages_to_the_end_of_the_log() -> None:
    log = Log(450, page=200)
    d = Delivery(log.fetch)
    d.order.start("c", 10)
    await d.catch_up("c")
    assert drain(d) == list(range(11, 451))
    assert [a for _, a in log.calls] == [10, 210, 410]


async def test_end_is_queued_with_the_error() -> None:
    d = Delivery(Log(0).fetch)
    err = Unavailable("x")
    d.end(err)
    item = d.queue.get_nowait()
    assert isinstance(item, End) and item.error is err
