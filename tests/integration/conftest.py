"""Fixtures for black-box tests across real processes.

- ``nats_factory`` / ``nats``: a fresh NATS (JetStream) per test, in tmp_path (~0.03 s).
- ``pg_server``: the throwaway PostgreSQL started by ``make test`` (``CHAT_TEST_PG_URL``).
- ``backend``: parametrized ``sqlite`` / ``postgres``; per-service database URLs.
- ``cluster``: a factory for ``chat_devtools.cluster.Cluster``, always stopped at teardown.

Every test in this directory gets the ``integration`` marker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.testing import NO_AUTH_BUDGETS, Backend, ClusterFactory, NatsFactory, PgTarget

# Extra environment for every service started by the `cluster` fixture. This is the hook
# for test-only knobs such as cheaper password hashing (auth), e.g.
#   "AUTH_ARGON2_TEST_MODE": "true"
# Keys are the services' own prefixed names. A test can also pass env=... to cluster().
SERVICE_TEST_ENV: dict[str, str] = {
    "AUTH_ENVIRONMENT": "test",
    "MESSAGES_ENVIRONMENT": "test",
    "GATEWAY_ENVIRONMENT": "test",
    # argon2 settings the auth service already has (cheap in tests, refused in production)
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
    # SIGTERM drain window of the gateway (default 5 s): short, so that stopping a cluster
    # with connections still open does not take seconds (test_gateway_safety sets its own)
    "GATEWAY_DRAIN_S": "0.5",
    **NO_AUTH_BUDGETS,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


# -- NATS ---------------------------------------------------------------------------------
@pytest.fixture
def nats_factory(tmp_path: Path) -> Iterator[NatsFactory]:
    """``nats_factory(**NatsServer kwargs) -> started NatsServer``; all stopped at teardown.
    Without ``accounts`` the server takes anonymous clients (component tests); clusters
    get one with an account (``cluster``)."""
    servers: list[NatsServer] = []

    def start(**kwargs: Any) -> NatsServer:
        kwargs.setdefault("store_dir", tmp_path / f"nats-{len(servers)}")
        server = NatsServer(**kwargs)
        servers.append(server)
        return server.start()

    yield start
    for s in reversed(servers):
        s.stop()


@pytest.fixture
def nats(nats_factory: NatsFactory) -> NatsServer:
    """A fresh, started NATS server for this test (``nats.url``)."""
    return nats_factory()


# -- PostgreSQL ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> PgTarget:
    url = os.environ.get("CHAT_TEST_PG_URL")
    if not url:
        msg = "CHAT_TEST_PG_URL is not set (run the tests with `make test`)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return PgTarget(url)


# -- backends -----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        return Backend("postgres", tmp_path, request.getfixturevalue("pg_server"))
    return Backend("sqlite", tmp_path)


# -- cluster ------------------------------------------------------------------------------
@pytest.fixture
def service_env() -> dict[str, str]:
    """A copy of SERVICE_TEST_ENV; override this fixture or mutate it in a test."""
    return dict(SERVICE_TEST_ENV)


@pytest.fixture
def cluster(tmp_path: Path, nats_factory: NatsFactory, service_env: dict[str, str]) -> Iterator[ClusterFactory]:
    """``cluster(gateways=1, messages_replicas=1, backend=None, nats=None, env=None,
    start=True, **Cluster kwargs) -> Cluster``.

    Without ``nats`` a fresh NatsServer is started (``c.nats``); without ``backend``,
    SQLite in tmp_path. Logs go to tmp_path/cluster-N/logs. Stopped at teardown.
    """
    clusters: list[Cluster] = []

    def make(
        *,
        gateways: int = 1,
        messages_replicas: int = 1,
        backend: Backend | None = None,
        nats: NatsServer | None = None,
        env: dict[str, str] | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> Cluster:
        n = len(clusters)
        base = tmp_path / f"cluster-{n}"
        base.mkdir()
        nats = nats or nats_factory(accounts=[ChatAccount.generate()])
        backend = backend or Backend("sqlite", tmp_path)
        c = Cluster(
            nats.url,
            nats=nats,
            database_urls=backend.database_urls(f"cluster-{n}"),
            data_dir=base,
            log_dir=base / "logs",
            gateways=gateways,
            messages_replicas=messages_replicas,
            environment="test",
            env={**service_env, **(env or {})},
            **kwargs,
        )
        clusters.append(c)
        return c.start() if start else c

    yield make
    for c in reversed(clusters):
        c.stop()


# -- one cluster per module ---------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster (1 gateway, 1 messages replica) shared by every test of a module, per
    backend: for table-driven tests whose cases only need fresh users and conversations
    (never a fresh process). Tests must not assume an empty database."""
    base = tmp_path_factory.mktemp("module-cluster")
    nats = NatsServer(store_dir=base / "nats", accounts=[ChatAccount.generate()]).start()
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    backend = Backend(request.param, base, pg)
    c = Cluster(
        nats.url,
        nats=nats,
        database_urls=backend.database_urls("m"),
        data_dir=base / "c",
        log_dir=base / "c" / "logs",
        gateways=1,
        environment="test",
        env=dict(SERVICE_TEST_ENV),
    )
    try:
        yield c.start()
    finally:
        c.stop()
        nats.stop()
