"""Scale-out under chaos (operations issue), the short profile: two replicas of every
service (gateway, messages, presence, search, media) as processes on PostgreSQL, with
heartbeats and presence reports every second. Six SDK users chat in three groups over both
gateways, attach fresh uploads and search, while one replica of each service is SIGKILLed
and restarted in turn, then NATS (same port and store) and PostgreSQL (same data
directory). The checker (``chat_devtools.chaos``) then proves: no acknowledged message
lost, none duplicated, order intact per conversation (history and every client's view),
presence converged, every acknowledged message searchable, every acknowledged upload
retrievable. The full matrix over several seeds is ``bench/chaos.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chat_devtools.chaos import ChaosConfig, chaos_env, run_chaos
from chat_devtools.postgres import PostgresServer
from chat_devtools.testing import Backend, ClusterFactory, PgTarget
from chat_search.indexer import consumer_config

pytestmark = [pytest.mark.fault, pytest.mark.postgres]

REPLICAS = 2


@pytest.fixture
def service_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, **chaos_env()}


async def test_replicas_killed_in_turn_then_nats_and_postgres_lose_nothing(
    cluster: ClusterFactory, pg_server: PgTarget, tmp_path: Path
) -> None:
    # A PostgreSQL of this test's own: the shared one serves every other test.
    pg = PostgresServer()
    await asyncio.to_thread(pg.start)
    try:
        c = cluster(
            backend=Backend("postgres", tmp_path, PgTarget(pg.base_url)),
            gateways=REPLICAS,
            messages_replicas=REPLICAS,
            presence_replicas=REPLICAS,
            media=True,
            media_replicas=REPLICAS,
            search=True,
            search_replicas=REPLICAS,
        )
        cfg = ChaosConfig(seed=1, search_redelivery_s=float(consumer_config().ack_wait or 0))
        report = await run_chaos(c, cfg, pg=pg)
        print(f"\n{report.row()}\n" + "\n".join(str(f) for f in report.faults))
        for note in report.notes:
            print(note)
        assert report.ok, "\n".join(report.problems + report.notes)
        assert report.acked > 0 and report.uploads > 0
        assert len(report.faults) == 5 + 2  # one replica of each service, NATS, PostgreSQL
    finally:
        await asyncio.to_thread(pg.destroy)
