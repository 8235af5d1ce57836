"""The drain closes connections spread evenly over its window, and waits for them."""

from __future__ import annotations

import asyncio
import itertools

from chat_gateway.drain import Drain


class FakeSession:
    def __init__(self, loop: asyncio.AbstractEventLoop, close_after: float = 0.0) -> None:
        self.loop = loop
        self.close_after = close_after
        self.drained_at: float | None = None
        self._closed = asyncio.Event()

    async def run(self) -> None:
        await self._closed.wait()

    @property
    def closed(self) -> asyncio.Event:
        return self._closed

    def drain(self) -> None:
        self.drained_at = self.loop.time()
        self.loop.call_later(self.close_after, self._closed.set)


async def test_closes_spread_over_the_window_then_waits_for_answers() -> None:
    loop = asyncio.get_running_loop()
    drain = Drain(window_s=0.6, answers_wait_s=2.0)
    sessions = [FakeSession(loop, close_after=0.05) for _ in range(12)]
    slow = FakeSession(loop, close_after=0.3)  # its last answer takes a while
    for s in [*sessions, slow]:
        drain.sessions.add(s)
    t0 = loop.time()
    await drain.run()
    took = loop.time() - t0
    times = sorted(s.drained_at - t0 for s in [*sessions, slow] if s.drained_at is not None)
    assert len(times) == 13
    assert times[0] < 0.05 and 0.45 <= times[-1] < 0.65  # first at once, last near the end
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.2  # evenly: 6 slices 0.1 s apart, no bunching at the end
    assert all(s.closed.is_set() for s in [*sessions, slow])
    assert took < 0.6 + 0.3 + 0.2


async def test_waiting_for_the_last_answers_is_bounded() -> None:
    loop = asyncio.get_running_loop()
    drain = Drain(window_s=0.0, answers_wait_s=0.2)
    stuck = FakeSession(loop, close_after=60)
    drain.sessions.add(stuck)
    t0 = loop.time()
    await drain.run()
    assert drain.draining and stuck.drained_at is not None
    assert loop.time() - t0 < 0.5  # gave up waiting after answers_wait_s
