"""The chat services wired together on free ports: auth, messages (xN), presence (xN),
media, gateways (xN).

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
    ) -> None:
        if gateways < 0 or messages_replicas < 1 or presence_replicas < 1:
            raise ValueError("need messages_replicas >= 1, presence_replicas >= 1 and gateways >= 0")
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
        self.media: ServiceProcess | None = None
        if media:
            media_dir = (self.data_dir or Path(".").resolve()) / "media"
            extra = {"MEDIA_INTERNAL_TOKEN": self.media_token, "MEDIA_LOCAL_DIR": str(media_dir)}
            self.media = self._make("media", "media", self._ports.get("media"), extra)
        # Search: SQLite FTS5 in data_dir unless the caller's env says otherwise.
        self.search: ServiceProcess | None = None
        if search:
            fts = (self.data_dir or Path(".").resolve()) / "search.db"
            self.search = self._make("search", "search", self._ports.get("search"), {"SEARCH_FTS_PATH": str(fts)})
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
        if self.media is not None:
            extra |= {
                "GATEWAY_MEDIA_URL": self.media.base_url,
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
        extra = [p for p in (self.media, self.search) if p is not None]
        return [self.auth, *self.messages, *self.presence, *extra, *self.gateways]

    @property
    def gateway_urls(self) -> list[str]:
        return [g.base_url for g in self.gateways]

    @property
    def gateway_url(self) -> str:
        return self.gateways[0].base_url

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://{g.host}:{g.port}/ws" for g in self.gateways]

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
            self._start_all([self.auth, first, first_presence, *extra, *self.gateways])
            self._start_all([*rest, *more_presence])
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
        extra = [p for p in (self.media, self.search) if p is not None]
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
