"""Helpers behind the integration-test fixtures (tests/integration/conftest.py).

Kept here, not in conftest, so tests can import the types without importing a conftest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chat_devtools.cluster import DB_SERVICES, Cluster, sqlite_urls
from chat_devtools.nats import NatsServer
from chat_devtools.postgres import create_database_sync

# Load-shaped tests and benchmarks (one user sending as fast as the box allows) are not
# rate-limit tests: how many sends fit in the per-user budget (250 + 10/s) depends on how
# fast the machine is, so they run with the gateway's send and frame buckets off.
NO_RATE_LIMITS = {"GATEWAY_RATE_SEND_BURST": "0", "GATEWAY_RATE_FRAMES_BURST": "0"}

# Every test and benchmark client registers and logs in from 127.0.0.1, many accounts a
# minute: the gateway's per-address and global /v1/auth budgets are off for them (the
# tests of those budgets turn them on).
NO_AUTH_BUDGETS = {
    f"GATEWAY_RATE_{kind}{scope}_BURST": "0" for kind in ("LOGIN", "REGISTER", "REFRESH") for scope in ("", "_GLOBAL")
}

NatsFactory = Callable[..., NatsServer]
ClusterFactory = Callable[..., Cluster]


@dataclass
class PgTarget:
    """The test PostgreSQL server; ``base_url`` (``postgresql+asyncpg://u@h:p``) has no db."""

    base_url: str

    def create_database(self, name: str) -> str:
        """Create ``name``; returns its SQLAlchemy async URL."""
        create_database_sync(self.base_url, name)
        return self.dsn(name)

    def dsn(self, name: str) -> str:
        return f"{self.base_url.rstrip('/')}/{name}"


@dataclass
class Backend:
    """Per-service database URLs for one test (``name`` is "sqlite" or "postgres").

    ``database_urls()`` is stable per ``tag``; another tag gives a fresh set (e.g. for a
    second, independent cluster). PostgreSQL databases are ``t_<uuid>_<service>``.
    """

    name: str
    tmp_path: Path
    pg: PgTarget | None = None
    _cache: dict[str, dict[str, str]] = field(default_factory=dict)

    def database_urls(self, tag: str = "") -> dict[str, str]:
        if tag not in self._cache:
            self._cache[tag] = self._new(tag)
        return self._cache[tag]

    def _new(self, tag: str) -> dict[str, str]:
        if self.pg is None:
            d = self.tmp_path / (f"db-{tag}" if tag else "db")
            d.mkdir(parents=True, exist_ok=True)
            return sqlite_urls(d)
        prefix = f"t_{uuid.uuid4().hex[:16]}"
        return {svc: self.pg.create_database(f"{prefix}_{svc}") for svc in DB_SERVICES}
