"""Saturation metrics every process exports the same way (the saturation dashboard).

- ``chat_event_loop_lag_seconds`` (histogram): how late the asyncio loop woke a task that
  asked to sleep ``interval`` — callbacks that hog the loop (CPU work, blocking calls) delay
  every socket, RPC and consumer of the process. One timer wake-up per ``interval``.
- ``chat_db_pool_connections_in_use`` / ``chat_db_pool_connections_max`` (gauges): database
  connections lent out and the most the pool may lend (pool + overflow), read at scrape time.
- ``chat_rpc_inflight`` (gauge): RPC requests this process is handling right now.

The gauges are one collector over the live engines and RPC servers (weak references), so a
process that builds several apps (tests) neither double-registers nor keeps them alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

LOOP_LAG = Histogram(
    "chat_event_loop_lag_seconds",
    "How late the event loop ran a timer (loop blocked by CPU work or blocking calls)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class _InFlight(Protocol):
    @property
    def in_flight(self) -> int: ...


class _Saturation(Collector):
    def __init__(self) -> None:
        self.engines: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
        self.rpc_servers: weakref.WeakSet[_InFlight] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engines = list(self.engines.items())
        in_use = GaugeMetricFamily("chat_db_pool_connections_in_use", "Database connections lent out by the pool")
        in_use.add_metric([], float(sum(_checked_out(e) for e, _ in engines)))
        limit = GaugeMetricFamily(
            "chat_db_pool_connections_max", "Most connections the pool may lend (pool + overflow)"
        )
        limit.add_metric([], float(sum(m for _, m in engines)))
        rpc = GaugeMetricFamily("chat_rpc_inflight", "RPC requests being handled by this process")
        rpc.add_metric([], float(sum(s.in_flight for s in list(self.rpc_servers))))
        yield from (in_use, limit, rpc)


_SATURATION = _Saturation()
REGISTRY.register(_SATURATION)


def _checked_out(engine: Engine) -> int:
    # the engine's current pool (dispose() replaces it); every pool the engines use counts
    checkedout = getattr(engine.pool, "checkedout", None)
    return int(checkedout()) if callable(checkedout) else 0


def track_pool(engine: Engine, max_connections: int) -> None:
    """Export ``engine``'s connection pool in the ``chat_db_pool_*`` gauges."""
    _SATURATION.engines[engine] = max_connections


def track_rpc_server(server: _InFlight) -> None:
    """Export ``server.in_flight`` in ``chat_rpc_inflight``."""
    _SATURATION.rpc_servers.add(server)


class LoopLagMonitor:
    """Observes the event loop's lag into ``chat_event_loop_lag_seconds`` every ``interval``
    seconds while started (a task of the running loop); ``on_lag`` (if given) is told each
    measure too, and ``observe=False`` leaves the histogram to another monitor."""

    def __init__(
        self, interval: float = 0.5, on_lag: Callable[[float], None] | None = None, observe: bool = True
    ) -> None:
        self.interval = interval
        self.on_lag = on_lag
        self.observe = observe
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - started - self.interval)
            if self.observe:
                LOOP_LAG.observe(lag)
            if self.on_lag is not None:
                self.on_lag(lag)
