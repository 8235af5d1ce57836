"""The saturation metrics every process exports: event-loop lag, database pool, RPC in flight."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from chat_common.db import make_engine
from chat_common.runtime_metrics import LoopLagMonitor, track_rpc_server
from prometheus_client import REGISTRY


def sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


async def test_a_blocked_loop_shows_as_lag() -> None:
    before = sample("chat_event_loop_lag_seconds_sum")
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    await asyncio.sleep(0.02)
    time.sleep(0.2)  # noqa: ASYNC251 - the blocking call on the loop that the monitor must see
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert sample("chat_event_loop_lag_seconds_sum") - before >= 0.15


async def test_pool_gauges_follow_checked_out_connections(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    base_use, base_max = sample("chat_db_pool_connections_in_use"), sample("chat_db_pool_connections_max")
    async with engine.connect():
        assert sample("chat_db_pool_connections_in_use") == base_use + 1
    assert sample("chat_db_pool_connections_in_use") == base_use
    assert base_max >= 1
    await engine.dispose()


def test_rpc_inflight_sums_the_live_servers() -> None:
    class Server:
        in_flight = 3

    base = sample("chat_rpc_inflight")
    server = Server()
    track_rpc_server(server)
    assert sample("chat_rpc_inflight") == base + 3
    del server  # weakly held: a dropped server no longer counts
    assert sample("chat_rpc_inflight") == base
