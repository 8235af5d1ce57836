"""Overload is shed, not queued (hardening §6): how many sends may wait for the store.

Past the store's capacity a send path that admits everything only queues: every send waits
longer and longer and in the end many are never answered. Instead this gateway bounds the
sends it has waiting for the store, and refuses the rest at once with ``unavailable`` and
a retry time (REST 503 + ``Retry-After``); the client retries with the same
``client_msg_id``.

- **Per gateway**, the bound adapts to what the store achieves (additive increase,
  multiplicative decrease, like TCP's congestion window): while sends are stored within
  the target it grows by one per ``limit`` completions, up to ``max_inflight``; when one
  takes longer, it shrinks by a quarter (at most once per target), down to
  ``min_inflight``. The target is ``factor`` times the lowest latency seen in the last
  10-20 s (what a send costs when nothing waits), between ``FLOOR_S`` and ``target_s``.
  Admitted sends thus keep a latency near a few times the unloaded one, however much is
  offered.
- **Per connection** a fixed bound (``ConnectionSends``): a client pipelining hundreds of
  sends is refused early instead of filling its answer slots, so the gateway keeps reading
  its socket (pongs included) and never drops it for a missed keepalive.

Refusals are counted in ``chat_gateway_sends_refused_total{reason}``; the limit and what is
in flight are gauges.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat_proto.errors import ChatError, ErrorCode
from prometheus_client import Counter, Gauge

REFUSED = Counter("chat_gateway_sends_refused_total", "Sends refused at admission", ["reason"])
INFLIGHT = Gauge("chat_gateway_sends_inflight", "Sends waiting for the store on this gateway")
LIMIT = Gauge("chat_gateway_sends_limit", "Current bound of sends waiting for the store on this gateway")

GATEWAY, CONNECTION = "gateway", "connection"


def overloaded(retry_after_ms: int) -> ChatError:
    return ChatError(ErrorCode.UNAVAILABLE, "too many messages in flight; retry", retry_after_ms=retry_after_ms)


class Admission:
    # The latency kept: ``factor`` x the lowest latency seen lately (what the store takes
    # when nothing waits), at least FLOOR_S and at most the configured target. The floor is
    # a few batch cycles of the store (each a commit with its disk flush): a send that came
    # just before a commit is answered in a few ms, one that came just after waits for the
    # next, so far below capacity latencies already spread over several times the lowest.
    # With a 20 ms floor, 8 % of the sends were refused at 40 % of capacity (1,000 msg/s on
    # the 2-core box, PostgreSQL: ack p50 38 ms).
    FLOOR_S = 0.1
    WINDOW_S = 10.0

    def __init__(
        self,
        max_inflight: int,
        min_inflight: int,
        target_s: float,
        clock: Callable[[], float] = time.monotonic,
        factor: float = 6.0,
        floor_s: float = FLOOR_S,
    ) -> None:
        self.max, self.min, self.target, self.factor = max_inflight, min_inflight, target_s, factor
        self.floor = min(floor_s, target_s)
        self.clock = clock
        self.limit = float(max_inflight)
        self.inflight = 0
        self._decreased = float("-inf")
        # lowest latency of this window and of the one before (a sliding minimum)
        self._window_start = clock()
        self._low, self._low_before = float("inf"), float("inf")
        LIMIT.set(self.limit)

    def enter(self) -> None:
        """Admit one send, or raise ``unavailable`` with a retry time."""
        if self.inflight >= int(self.limit):
            REFUSED.labels(GATEWAY).inc()
            raise overloaded(self.retry_after_ms())
        self.inflight += 1
        INFLIGHT.set(self.inflight)

    def leave(self, latency_s: float | None) -> None:
        """The send was answered after ``latency_s`` (None: failed without telling anything
        about the store, e.g. refused by it)."""
        self.inflight -= 1
        INFLIGHT.set(self.inflight)
        if latency_s is None:
            return
        now = self.clock()
        self._note(now, latency_s)
        target = self.target_now()
        if latency_s > target:
            if now - self._decreased >= target:
                self.limit = max(float(self.min), self.limit * 0.75)
                self._decreased = now
        else:
            self.limit = min(float(self.max), self.limit + 1.0 / self.limit)
        LIMIT.set(self.limit)

    def _note(self, now: float, latency_s: float) -> None:
        passed = now - self._window_start
        if passed >= self.WINDOW_S:  # a new window; after two, nothing older counts
            self._low_before = self._low if passed < 2 * self.WINDOW_S else float("inf")
            self._low = float("inf")
            self._window_start = now
        self._low = min(self._low, latency_s)

    def target_now(self) -> float:
        """The latency admitted sends are kept near."""
        low = min(self._low, self._low_before)
        if low == float("inf"):
            return self.target
        return min(self.target, max(self.floor, self.factor * low))

    def retry_after_ms(self) -> int:
        """About one target: by then the sends now in flight have been answered."""
        return max(50, int(self.target_now() * 1000))


class ConnectionSends:
    """Sends of one connection waiting for the store, bounded."""

    __slots__ = ("inflight", "max")

    def __init__(self, max_inflight: int) -> None:
        self.max = max_inflight
        self.inflight = 0

    def enter(self, retry_after_ms: int) -> None:
        if self.inflight >= self.max:
            REFUSED.labels(CONNECTION).inc()
            raise overloaded(retry_after_ms)
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
