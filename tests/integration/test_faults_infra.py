"""Infrastructure faults mid-burst (issue "Delivery guarantees"): the NATS server, then the
PostgreSQL server, is SIGKILLed in the middle of a 2,000-message burst and started again.

What must hold (checked by ``assert_clean`` of test_faults): no ack without a commit (every
acked client_msg_id is in history, at the seq its ack carried), nothing acked lost, no
duplicates, seqs gap-free; and the services recover by themselves — the same processes,
no restart — so the burst completes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chat_devtools.postgres import PostgresServer
from chat_devtools.testing import Backend, ClusterFactory, PgTarget
from helpers.bursts import BURST_ENV, assert_clean, run_burst, setup_pair

pytestmark = [pytest.mark.fault]


@pytest.fixture
def service_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, **BURST_ENV}  # a 2,000-message burst of one user: no rate limits


OUTAGE_S = 2.0


def _pids(c: object) -> list[int | None]:
    return [p.pid for p in c.processes]  # type: ignore[attr-defined]


async def test_nats_killed_and_restarted_mid_burst(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(backend=backend)
    api, alice, conv = await setup_pair(c)
    before = _pids(c)

    async def crash_nats() -> None:
        await asyncio.to_thread(c.nats.kill)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(c.nats.start)

    try:
        b = await run_burst(c.ws_urls[0], alice, conv, crash_nats)
        print(f"\n[{backend.name}, NATS killed] {b.summary()}")
        await assert_clean(api, alice, conv, b, c)
        assert _pids(c) == before and not c.dead(), "a service died or was restarted"
    finally:
        await api.close()


@pytest.mark.postgres
async def test_postgres_killed_and_restarted_mid_burst(
    cluster: ClusterFactory, pg_server: PgTarget, tmp_path: Path
) -> None:
    # A PostgreSQL of this test's own: the shared one serves every other test. (Its own
    # temp dir: pytest's tmp_path is not reachable for the postgres user when run as root.)
    pg = PostgresServer()
    await asyncio.to_thread(pg.start)
    try:
        c = cluster(backend=Backend("postgres", tmp_path, PgTarget(pg.base_url)))
        api, alice, conv = await setup_pair(c)
        before = _pids(c)

        async def crash_postgres() -> None:
            await asyncio.to_thread(pg.kill)
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(pg.start)

        try:
            b = await run_burst(c.ws_urls[0], alice, conv, crash_postgres)
            print(f"\n[postgres killed] {b.summary()}")
            await assert_clean(api, alice, conv, b, c)
            assert _pids(c) == before and not c.dead(), "a service died or was restarted"
        finally:
            await api.close()
    finally:
        await asyncio.to_thread(pg.destroy)
