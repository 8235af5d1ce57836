"""Crash faults, black-box: the messages service is SIGKILLed in the middle of a burst of
sends over a WebSocket (PROTOCOL §3 seq rules, §4 `send`/`ack` and idempotent retries).

The client pipelines sends with a bounded window of in-flight frames, and retries any send
that is answered `unavailable` (or not at all within a deadline) with the SAME
client_msg_id until it is acked. Afterwards the log must hold every message exactly once,
at the seq its ack carried, with seqs 1..N gap-free.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from chat_devtools.testing import Backend, ClusterFactory
from helpers.bursts import BURST_ENV, assert_clean, run_burst, setup_pair

pytestmark = pytest.mark.fault


@pytest.fixture
def service_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, **BURST_ENV}


async def test_messages_killed_mid_burst_and_restarted(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(backend=backend)
    api, alice, conv = await setup_pair(c)
    svc = c.messages[0]

    async def kill_and_restart() -> None:
        code = await asyncio.to_thread(svc.kill)
        assert code is not None and code != 0, code
        await asyncio.sleep(1.0)
        await asyncio.to_thread(svc.start)

    try:
        b = await run_burst(c.ws_urls[0], alice, conv, kill_and_restart)
        print(f"\n[{backend.name}] {b.summary()}")
        await assert_clean(api, alice, conv, b, c)
        assert svc.running() and not c.dead(), c.dead()
    finally:
        await api.close()


async def test_one_of_two_messages_replicas_killed_mid_burst(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(backend=backend, messages_replicas=2)
    api, alice, conv = await setup_pair(c)
    victim = c.messages[0]  # the one that ran the migrations; the other carries on alone

    async def kill() -> None:
        code = await asyncio.to_thread(victim.kill)
        assert code is not None and code != 0, code

    try:
        b = await run_burst(c.ws_urls[0], alice, conv, kill)
        print(f"\n[{backend.name} x2] {b.summary()}")
        await assert_clean(api, alice, conv, b, c)
        assert not victim.running() and c.messages[1].running()
    finally:
        await api.close()


async def test_readiness_probes_during_burst_lose_nothing(cluster: ClusterFactory, backend: Backend) -> None:
    """Not a crash, but the probe an orchestrator runs all the time (and the one
    ServiceProcess.start() polls after a restart): GET /readyz on the messages service
    while it writes must not disturb the writes."""
    c = cluster(backend=backend)
    api, alice, conv = await setup_pair(c)
    url = c.messages[0].base_url + "/readyz"
    probes = 0

    async def probe_until_done() -> None:
        nonlocal probes
        async with httpx.AsyncClient(timeout=5) as http:
            while not done.is_set():
                r = await http.get(url)
                assert r.status_code == 200, r.text
                probes += 1
                await asyncio.sleep(0.005)

    done = asyncio.Event()
    prober: asyncio.Task[None] | None = None

    async def start_probing() -> None:
        nonlocal prober
        prober = asyncio.create_task(probe_until_done())

    try:
        b = await run_burst(c.ws_urls[0], alice, conv, start_probing, fault_after=1)
        done.set()
        assert prober is not None
        await asyncio.wait_for(prober, timeout=10)
        print(f"\n[{backend.name} readyz x{probes}] {b.summary()}")
        await assert_clean(api, alice, conv, b, c)
    finally:
        done.set()
        await api.close()
