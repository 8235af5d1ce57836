"""The chat services wired together on free ports: auth, messages (xN), presence (xN),
media (xN), search (xN), gateways (xN).

Used by ``make run`` (through run.py), the integration tests and the benchmarks. NATS and
PostgreSQL are not started here: pass their URLs.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import nats as nats_py

from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.ports import LOOPBACK, free_port
from chat_devtools.services import ServiceProcess

MODULES = {
    "auth": "chat_auth",
    "messages": "chat_messages",
    "presence": "chat_presence",
    "media": "chat_media",
    "search": "chat_search",
    "gateway": "chat_gateway",
}
PREFIXES = {
    "auth": "AUTH_",
    "messages": "MESSAGES_",
    "presence": "PRESENCE_",
    "media": "MEDIA_",
    "search": "SEARCH_",
    "gateway": "GATEWAY_",
}
DB_SERVICES = ("auth", "messages", "presence", "media")


def _replica_name(service: str, i: int) -> str:
    """``media``, ``media-1``, ``media-2``, …: the first keeps the name (and log file) it had
    before there were replicas."""
    return service if i == 0 else f"{service}-{i}"


def sqlite_urls(data_dir: Path | str) -> dict[str, str]:
    """``sqlite+aiosqlite:////abs/data/<service>.db`` for each service that owns tables."""
    d = Path(data_dir).resolve()
    return {svc: f"sqlite+aiosqlite:///{d / (svc + '.db')}" for svc in DB_SERVICES}


class Cluster:
    """Start order: auth and the first messages and presence replicas (they migrate), the
    other replicas, then the gateways. Stop order: gateways, presence, messages, auth.

    ``database_urls`` maps ``"auth"``/``"messages"``/``"presence"`` to SQLAlchemy async URLs;
    a service missing from it (or all, without it) gets a SQLite file in ``data_dir``.
    ``env`` applies to every service (prefixed names, e.g.
    ``{"AUTH_ARGON2_TIME_COST": "1"}``); ``service_env`` per service name.

    ``account`` (a ``ChatAccount``; default: the account of ``nats`` when it has one) gives
    each service its own NATS user, with production's permissions.

    ``media_replicas`` / ``search_replicas`` (with ``media`` / ``search`` on): replicas of
    those services. Media replicas share the storage (one local directory in ``data_dir``,
    or the caller's S3 bucket) and the database; each gateway reaches one of them over HTTP
    (``GATEWAY_MEDIA_URL`` takes one URL): gateway ``i`` uses media replica ``i % n``, so a
    dead media replica refuses the uploads of its gateways (503) until it is back. Search
    replicas share the durable consumer of the event stream and the index: one SQLite FTS5
    file (WAL; its writers are serialized, every write is versioned) or the caller's
    OpenSearch. ``media`` / ``search`` stay the first replica (or None).
    """

    def __init__(
        self,
        nats_url: str,
        *,
        database_urls: Mapping[str, str] | None = None,
        data_dir: Path | str | None = None,
        gateways: int = 1,
        messages_replicas: int = 1,
        presence_replicas: int = 1,
        gateway_port: int | None = None,
        ports: Mapping[str, int] | None = None,
        log_dir: Path | str | None = None,
        environment: str = "development",
        log_level: str = "INFO",
        env: Mapping[str, str] | None = None,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        ready_timeout: float = 30.0,
        nats: Any = None,
        account: ChatAccount | None = None,
        media: bool = True,
        search: bool = True,
        media_replicas: int = 1,
        search_replicas: int = 1,
    ) -> None:
        if gateways < 0 or min(messages_replicas, presence_replicas, media_replicas, search_replicas) < 1:
            raise ValueError("need every replica count >= 1 and gateways >= 0")
        self.nats_url = nats_url
        self.nats = nats  # the NatsServer, when the caller wants to keep it at hand
        self.account = account or getattr(nats, "account", None)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None and (database_urls is None or log_dir is None):
            self._tmp = tempfile.TemporaryDirectory(prefix="chat-cluster-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.database_urls = {**sqlite_urls(self.data_dir or "."), **(database_urls or {})}
        self.log_dir = Path(log_dir) if log_dir else (self.data_dir or Path(".")) / "logs"
        self.environment = environment
        self.log_level = log_level
        self.env = dict(env or {})
        self.service_env = {k: dict(v) for k, v in (service_env or {}).items()}
        self.ready_timeout = ready_timeout
        self._ports = dict(ports or {})

        self.auth = self._make("auth", "auth", self._ports.get("auth"))
        self.messages = [
            self._make("messages", f"messages-{i}", self._ports.get("messages") if i == 0 else None)
            for i in range(messages_replicas)
        ]
        self.presence = [
            self._make("presence", f"presence-{i}", self._ports.get("presence") if i == 0 else None)
            for i in range(presence_replicas)
        ]
        # Media: local directory storage in data_dir unless the caller's env says otherwise
        # (MEDIA_STORAGE=s3 …); the gateways reach it over HTTP with a per-cluster token and
        # share one key for signed media URLs.
        self.media_token = secrets.token_urlsafe(24)
        self.media_url_key = secrets.token_urlsafe(32)
        self.media_replicas: list[ServiceProcess] = []
        if media:
            media_dir = (self.data_dir or Path(".").resolve()) / "media"
            extra = {"MEDIA_INTERNAL_TOKEN": self.media_token, "MEDIA_LOCAL_DIR": str(media_dir)}
            self.media_replicas = [
                self._make("media", _replica_name("media", i), self._ports.get("media") if i == 0 else None, extra)
                for i in range(media_replicas)
            ]
        self.media: ServiceProcess | None = self.media_replicas[0] if self.media_replicas else None
        # Search: SQLite FTS5 in data_dir unless the caller's env says otherwise.
        self.search_replicas: list[ServiceProcess] = []
        if search:
            fts = {"SEARCH_FTS_PATH": str((self.data_dir or Path(".").resolve()) / "search.db")}
            self.search_replicas = [
                self._make("search", _replica_name("search", i), self._ports.get("search") if i == 0 else None, fts)
                for i in range(search_replicas)
            ]
        self.search: ServiceProcess | None = self.search_replicas[0] if self.search_replicas else None
        self.gateways: list[ServiceProcess] = []
        for i in range(gateways):
            self.gateways.append(self._make_gateway(gateway_port if i == 0 else None))

    # -- building ---------------------------------------------------------------------
    def service_environment(self, service: str, port: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The env of one service process: contract defaults, then ``extra``, then the
        caller's ``env`` and ``service_env`` (which win)."""
        p = PREFIXES[service]
        env = {
            f"{p}HOST": LOOPBACK,
            f"{p}PORT": str(port),
            f"{p}NATS_URL": self.nats_url,
            f"{p}ENVIRONMENT": self.environment,
            f"{p}LOG_LEVEL": self.log_level,
        }
        if service in DB_SERVICES:
            env[f"{p}DATABASE_URL"] = self.database_urls[service]
        if self.account is not None:
            env |= self.account.service_env(service, p)
        return {**env, **(extra or {}), **self.env, **self.service_env.get(service, {})}

    def _make(
        self, service: str, name: str, port: int | None, extra: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        port = port or free_port()
        return ServiceProcess(
            name,
            MODULES[service],
            self.service_environment(service, port, extra),
            port,
            log_file=self.log_dir / f"{name}.log",
            ready_timeout=self.ready_timeout,
        )

    def _make_gateway(self, port: int | None) -> ServiceProcess:
        i = len(self.gateways)
        port = port or free_port()
        # unique per gateway process (the port is unique on this host at a time); /metrics
        # on its own operations port
        metrics = self._ports.get("gateway_metrics") if i == 0 else None
        extra = {"GATEWAY_GATEWAY_ID": f"gw{i}-{port}", "GATEWAY_METRICS_PORT": str(metrics or free_port())}
        if self.media_replicas:
            extra |= {
                "GATEWAY_MEDIA_URL": self.media_replicas[i % len(self.media_replicas)].base_url,
                "GATEWAY_MEDIA_TOKEN": self.media_token,
                "GATEWAY_MEDIA_URL_KEY": self.media_url_key,
            }
        return self._make("gateway", f"gateway-{i}", port, extra)

    def add_gateway(self, port: int | None = None, start: bool = True) -> ServiceProcess:
        gw = self._make_gateway(port)
        self.gateways.append(gw)
        if start:
            gw.start()
        return gw

    # -- views ------------------------------------------------------------------------
    @property
    def processes(self) -> list[ServiceProcess]:
        """In start order."""
        return [self.auth, *self.messages, *self.presence, *self.media_replicas, *self.search_replicas, *self.gateways]

    @property
    def gateway_urls(self) -> list[str]:
        return [g.base_url for g in self.gateways]

    @property
    def gateway_url(self) -> str:
        return self.gateways[0].base_url

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://{g.host}:{g.port}/ws" for g in self.gateways]

    async def connect_nats(self) -> Any:
        """A NATS connection in this cluster's account (a plain one when it has none), for
        tests and checkers that read its streams."""
        return await (
            self.account.connect(self.nats_url) if self.account is not None else nats_py.connect(self.nats_url)
        )

    def dead(self) -> list[ServiceProcess]:
        """Started processes that have exited."""
        return [p for p in self.processes if p.proc is not None and not p.running()]

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Cluster:
        """The first of each service (they migrate) and the gateways at once (a gateway needs
        only NATS to start; it asks auth for keys when the first token comes), then the
        other replicas."""
        try:
            first, *rest = self.messages
            first_presence, *more_presence = self.presence
            extra = [p for p in (self.media, self.search) if p is not None]
            more = [*rest, *more_presence, *self.media_replicas[1:], *self.search_replicas[1:]]
            self._start_all([self.auth, first, first_presence, *extra, *self.gateways])
            self._start_all(more)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _start_all(procs: list[ServiceProcess]) -> None:
        for p in procs:
            p.spawn()
        for p in procs:
            p.wait_ready()

    def stop(self, timeout: float = 15.0, parallel: bool = False) -> None:
        """Gateways first (they drain clients), then presence, messages, auth; with
        ``parallel`` every process at once (tests: nothing depends on the order)."""
        extra = [*self.media_replicas, *self.search_replicas]
        groups = [self.processes] if parallel else [self.gateways, [*self.presence, *extra], self.messages, [self.auth]]
        for group in groups:
            for p in group:  # SIGTERM the whole group at once, then wait for each
                if p.running() and p.proc is not None:
                    p.proc.terminate()
            for p in group:
                p.stop(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
