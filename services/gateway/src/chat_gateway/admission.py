"""Overload is shed, not queued (hardening §6): how many sends may wait for the store.

Past the store's capacity a send path that admits everything only queues: every send waits
longer and longer and in the end many are never answered. Instead this gateway bounds the
sends it has waiting for the store, and refuses the rest at once with ``unavailable`` and
a retry time (REST 503 + ``Retry-After``); the client retries with the same
``client_msg_id``.

- **Per gateway**, the bound adapts to what the store achieves, like TCP's congestion
  window: while sends are stored within half the target it grows by one per completion
  (doubling per round trip: slow start), up to the target by one per ``limit``
  completions (additive increase); when one takes longer than the target it shrinks in
  proportion (to ``target / latency`` of itself, by at least a quarter, at most once per
  target), down to ``min_inflight``. The target is ``factor`` times the lowest latency seen
  in the last ~5 minutes while the gateway was not shedding load (no refusal for a second):
  what a send costs when nothing waits, between ``FLOOR_S`` and ``target_s``. Under
  overload every send queues (behind this gateway's sends or another gateway's), and the
  minimum of a short window is then the queue's: a target that followed it would rise with
  the queue it allows, up to ``target_s`` (measured: p50 from 100 to 200 ms within 30 s at
  twice the capacity). A long memory is what keeps the unloaded measure (as TCP BBR keeps
  its minimum round trip). Admitted sends thus keep a latency near a few times the unloaded
  one, however much is offered.
- **The gateway's own delay counts**: a send's latency as a client sees it is also the time
  its frame waits to be read and its answer to be written, i.e. the event loop's lag when
  the gateway's CPU is the bottleneck (fanout of what was admitted, refusals, TLS). Each
  answer is judged as ``store latency + 2 x loop lag`` (lag measured every 50 ms, the
  largest of the last few), so a gateway short of CPU admits less instead of queueing in
  its sockets where no bound sees it.
- **Unused room is not kept** (as TCP validates an idle window, RFC 7661): the bound never
  exceeds twice the most sends that were in flight in the last 10-20 s, or ``idle_limit``
  if more (the gateway passes twice a connection's bound: a client flushing its outbox
  after a reconnect is a burst, not overload). A gateway that was quiet does not admit
  ``max_inflight`` sends at once when load arrives (their queue would be the tail of the
  admitted latency for seconds); past ``idle_limit`` it opens up by slow start.
- **Per connection** a fixed bound (``ConnectionSends``): a client pipelining hundreds of
  sends is refused early instead of filling its answer slots, so the gateway keeps reading
  its socket (pongs included) and never drops it for a missed keepalive.

Refusals are counted in ``chat_gateway_sends_refused_total{reason}``; the limit and what is
in flight are gauges.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from chat_proto.errors import ChatError, ErrorCode
from prometheus_client import Counter, Gauge

REFUSED = Counter("chat_gateway_sends_refused_total", "Sends refused at admission", ["reason"])
INFLIGHT = Gauge("chat_gateway_sends_inflight", "Sends waiting for the store on this gateway")
LIMIT = Gauge("chat_gateway_sends_limit", "Current bound of sends waiting for the store on this gateway")
TARGET = Gauge("chat_gateway_sends_target_seconds", "Latency admission currently keeps sends near")
LAG = Gauge("chat_gateway_sends_loop_lag_seconds", "Event loop lag added to each send's latency at admission")

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
    LOW_WINDOWS = 30  # the lowest latency is remembered this many windows (5 minutes)
    IDLE_LIMIT = 500
    QUIET_S = 1.0  # no refusal for this long: the latency of a send says what the store costs

    def __init__(
        self,
        max_inflight: int,
        min_inflight: int,
        target_s: float,
        clock: Callable[[], float] = time.monotonic,
        factor: float = 6.0,
        floor_s: float = FLOOR_S,
        idle_limit: int = IDLE_LIMIT,
    ) -> None:
        self.max, self.min, self.target, self.factor = max_inflight, min_inflight, target_s, factor
        self.floor = min(floor_s, target_s)
        self.idle = max(min_inflight, min(idle_limit, max_inflight))
        self.clock = clock
        self.limit = float(self.idle)
        self.inflight = 0
        self._decreased = float("-inf")
        # lowest latency of this window and of the LOW_WINDOWS before (those that saw one);
        # most in flight of this window and of the one before (sliding)
        self._window_start = clock()
        self._low = float("inf")
        self._lows: deque[float] = deque(maxlen=self.LOW_WINDOWS)
        self._peak, self._peak_before = 0, 0
        self._refused_at = float("-inf")
        self.lag = 0.0  # the event loop's recent lag (see loop_lag)
        LIMIT.set(self.limit)

    def full(self) -> bool:
        """No room for another send now."""
        return self.inflight >= int(self.limit)

    def enter(self) -> None:
        """Admit one send, or raise ``unavailable`` with a retry time."""
        if self.full():
            REFUSED.labels(GATEWAY).inc()
            self.refusing()
            raise overloaded(self.retry_after_ms())
        self.inflight += 1
        if self.inflight > self._peak:
            self._peak = self.inflight
        INFLIGHT.set(self.inflight)

    def leave(self, latency_s: float | None) -> None:
        """The send was answered after ``latency_s`` (None: failed without telling anything
        about the store, e.g. refused by it)."""
        self.inflight -= 1
        INFLIGHT.set(self.inflight)
        if latency_s is None:
            return
        latency_s += 2.0 * self.lag  # read late, answered late
        now = self.clock()
        self._note(now, latency_s, unloaded=now - self._refused_at > self.QUIET_S)
        target = self.target_now()
        if latency_s > target:
            if now - self._decreased >= target:
                self.limit = max(float(self.min), self.limit * min(0.75, target / latency_s))
                self._decreased = now
        else:
            grown = self.limit + (1.0 if latency_s <= target / 2 else 1.0 / self.limit)
            used = max(float(self.idle), 2.0 * max(self._peak, self._peak_before))
            self.limit = max(float(self.min), min(float(self.max), grown, used))
        LIMIT.set(self.limit)
        TARGET.set(target)

    def loop_lag(self, lag_s: float) -> None:
        """The event loop ran ``lag_s`` late (a monitor calls this every 50 ms): kept as the
        largest of the last few measures (halved at each one that is smaller)."""
        self.lag = max(lag_s, self.lag * 0.5)
        LAG.set(self.lag)

    def refusing(self) -> None:
        """A send was refused for this gateway's bound (also when refused without
        :meth:`enter`): latencies seen meanwhile are a queue's, not the store's."""
        self._refused_at = self.clock()

    def _note(self, now: float, latency_s: float, unloaded: bool) -> None:
        passed = now - self._window_start
        if passed >= self.WINDOW_S:  # a new window
            if self._low != float("inf"):
                self._lows.append(self._low)
            self._peak_before = self._peak if passed < 2 * self.WINDOW_S else 0
            self._low, self._peak = float("inf"), self.inflight + 1  # the one just answered counts
            self._window_start = now
        if unloaded:
            self._low = min(self._low, latency_s)

    def target_now(self) -> float:
        """The latency admitted sends are kept near."""
        low = min(self._low, min(self._lows, default=float("inf")))
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
