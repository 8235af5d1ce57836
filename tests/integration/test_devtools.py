"""The process tooling itself works: real NATS (JetStream) and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import asyncpg
import httpx
import nats as nats_py
import pytest
from chat_devtools import forkserver
from chat_devtools.nats import NatsServer
from chat_devtools.ports import free_port, port_is_free
from chat_devtools.postgres import asyncpg_dsn
from chat_devtools.services import ServiceFailed, ServiceProcess
from chat_devtools.testing import Backend, ClusterFactory, NatsFactory, PgTarget
from nats.js.api import StorageType, StreamConfig


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert port_is_free(port)


async def _publish(url: str, stream: str, subject: str, n: int) -> None:
    nc = await nats_py.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"], storage=StorageType.FILE))
        for i in range(n):
            ack = await js.publish(f"{subject}.{i}", f"m{i}".encode())
            assert ack.seq == i + 1
    finally:
        await nc.close()


async def _read_all(url: str, stream: str) -> list[bytes]:
    nc = await nats_py.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        return [(await js.get_msg(stream, seq)).data or b"" for seq in range(1, info.state.last_seq + 1)]
    finally:
        await nc.close()


async def test_nats_jetstream_survives_sigkill(nats_factory: NatsFactory, tmp_path: Path) -> None:
    # JetStream acks are not fsynced by default: sync every write so SIGKILL cannot lose it
    server = nats_factory(sync_interval="always")
    url, port = server.url, server.port
    await _publish(url, "DEVTOOLS", "dev.t", 5)

    server.kill()
    assert not server.running()
    server.start()  # same ports, same store dir
    assert server.url == url and server.port == port

    assert await _read_all(url, "DEVTOOLS") == [f"m{i}".encode() for i in range(5)]
    assert (server.store_dir / "jetstream" / "$G" / "streams" / "DEVTOOLS").is_dir()

    server.restart()  # graceful stop + start keeps the data too
    assert len(await _read_all(url, "DEVTOOLS")) == 5


def test_nats_config_limits(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "n") as server:
        text = server.config_file.read_text()
        assert "max_payload: 8MB" in text and "listen: 127.0.0.1:" in text

        async def max_payload() -> int:
            nc = await nats_py.connect(server.url)
            try:
                return int(nc.max_payload)
            finally:
                await nc.close()

        assert asyncio.run(max_payload()) == 8 * 1024 * 1024
    assert not server.running()


@pytest.mark.postgres
async def test_postgres_databases_accept_connections(pg_server: PgTarget) -> None:
    name = f"t_{uuid.uuid4().hex[:16]}_devtools"
    url = pg_server.create_database(name)
    assert url.startswith("postgresql+asyncpg://") and url.endswith("/" + name)
    conn = await asyncpg.connect(asyncpg_dsn(url, name))
    try:
        await conn.execute("CREATE TABLE t (id int primary key, v text)")
        await conn.execute("INSERT INTO t VALUES (1, 'x')")
        assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "x"
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SELECT current_database()") == name
    finally:
        await conn.close()


def test_cluster_starts_serves_health_and_stops(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, messages_replicas=2, backend=backend, fresh=True, media=True, search=True)  # stops it
    assert len(c.gateway_urls) == 2 and len(set(c.gateway_urls)) == 2
    ids = {g.env["GATEWAY_GATEWAY_ID"] for g in c.gateways}
    assert len(ids) == 2
    for p in c.processes:
        assert p.running(), p
        for path in ("/healthz", "/readyz"):
            assert httpx.get(p.base_url + path, timeout=5).status_code == 200, (p, path)
    if backend.name == "postgres":
        assert c.database_urls["auth"].startswith("postgresql+asyncpg://")
    c.stop()
    assert all(not p.running() for p in c.processes)


@pytest.mark.parametrize("forked", ["1", "0"])
def test_service_process_exit_codes_and_signals(
    forked: str, nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forked from the fork server (the tests' default) or run with ``python -m``, a service
    process behaves the same: a start-up failure's exit code and log, SIGTERM's clean exit,
    SIGKILL's -9, its own session and its own environment."""
    monkeypatch.setenv(forkserver.ENV, forked)
    log = tmp_path / "p.log"
    env = {"PRESENCE_NATS_URL": nats.url, "PRESENCE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/p.db"}
    bad = ServiceProcess("presence", "chat_presence", {**env, "PRESENCE_PORT": "not-a-port"}, free_port(), log_file=log)
    with pytest.raises(ServiceFailed) as failed:
        bad.start(timeout=60)
    assert bad.returncode not in (None, 0)
    assert "PRESENCE_PORT" in log.read_text() or "port" in str(failed.value).lower()

    port = free_port()
    p = ServiceProcess("presence", "chat_presence", {**env, "PRESENCE_PORT": str(port)}, port, log_file=log).start(60)
    assert p.pid is not None and os.getsid(p.pid) == p.pid  # its own session
    assert p.stop(timeout=30) in (0, -signal.SIGTERM)  # graceful (uvicorn re-raises the signal)
    p.start(60)
    assert p.kill() == -signal.SIGKILL
    assert not p.running()
    assert "Application startup complete" in log.read_text()
