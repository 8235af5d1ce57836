"""``chat-run`` (``make run``): the whole backend on this machine, embedded defaults.

NATS (JetStream data in ./data/nats), auth, messages, presence and one gateway, SQLite files in
./data. Ctrl-C / SIGTERM stops everything (gateway first, NATS last) and exits 0; a child
that dies on its own stops everything and exits 1. A second run keeps the data.

Environment (all optional):
  GATEWAY_PORT (8080)        public port of the gateway, on 127.0.0.1
  AUTH_PORT (8081), MESSAGES_PORT (8082), PRESENCE_PORT (8083), GATEWAY_METRICS_PORT (9464)
                             fixed when set, else those or free ports
  CHAT_DATA_DIR (./data)     NATS store, SQLite files, logs
  CHAT_NATS_PORT (4222), CHAT_NATS_MONITOR_PORT (8222)   fixed when set, else those or free
  CHAT_NATS_URL              use this NATS instead of starting one (then give each service its
                             credentials: AUTH_NATS_USER/AUTH_NATS_PASSWORD, MESSAGES_…, …)
  AUTH_DATABASE_URL, MESSAGES_DATABASE_URL, PRESENCE_DATABASE_URL   instead of the SQLite files
  CHAT_GATEWAYS (1), CHAT_MESSAGES_REPLICAS (1), CHAT_PRESENCE_REPLICAS (1), CHAT_LOG_LEVEL (INFO)
  GATEWAY_WEB_DIR            serve this static export at / instead of building ./web (see
                             chat_devtools.webapp: ./web is built with npm when its sources changed)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from chat_devtools.cluster import Cluster, sqlite_urls
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.ports import LOOPBACK, port_is_free, preferred_port
from chat_devtools.services import ServiceFailed
from chat_devtools.webapp import BuildFailed, ensure_built


class _Shutdown(Exception):
    pass


_stopping = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _stopping
    if _stopping:  # already shutting down: ignore repeats
        return
    _stopping = True
    log(f"{signal.Signals(signum).name} received: stopping")
    raise _Shutdown


def log(msg: str) -> None:
    print(f"[chat-run {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _port(env_name: str, default: int) -> int:
    """The env value exactly when set; else ``default`` when free, else a free port."""
    value = os.environ.get(env_name)
    return int(value) if value else preferred_port(default)


def _banner(nats_url: str, cluster: Cluster, data_dir: Path) -> None:
    gw = cluster.gateways[0] if cluster.gateways else None
    lines = [
        "",
        "chat backend is up",
        f"  gateway   {gw.base_url if gw else '-'}  (REST /v1/*, WebSocket "
        f"ws://{LOOPBACK}:{gw.port if gw else '-'}/ws)",
        *(
            [f"  web app   {gw.base_url}/   API docs {gw.base_url}/docs"]
            if gw and gw.env.get("GATEWAY_WEB_DIR")
            else ([f"  API docs  {gw.base_url}/docs  (no web app built)"] if gw else [])
        ),
        *(f"  gateway   {g.base_url}" for g in cluster.gateways[1:]),
        *(f"  metrics   {g.metrics_url}/metrics" for g in cluster.gateways),
        f"  auth      {cluster.auth.base_url}",
        *(f"  messages  {m.base_url}" for m in cluster.messages),
        *(f"  presence  {p.base_url}" for p in cluster.presence),
        *([f"  media     {cluster.media.base_url}  (files in {data_dir}/media)"] if cluster.media else []),
        *([f"  search    {cluster.search.base_url}  (SQLite FTS5 in {data_dir}/search.db)"] if cluster.search else []),
        f"  nats      {nats_url}",
        f"  data      {data_dir}   logs: {cluster.log_dir}/*.log",
        "  Ctrl-C to stop",
        "",
    ]
    print("\n".join(lines), flush=True)


def main() -> int:
    data_dir = Path(os.environ.get("CHAT_DATA_DIR", "data")).resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    nats: NatsServer | None = None
    cluster: Cluster | None = None
    code = 0
    try:
        gateway_port = int(os.environ.get("GATEWAY_PORT", "8080"))
        if not port_is_free(gateway_port):
            log(f"port {gateway_port} is taken: set GATEWAY_PORT to another port")
            return 2
        nats_url = os.environ.get("CHAT_NATS_URL")
        if not nats_url:
            # Every service connects as its own NATS user with production's permissions; the
            # credentials are generated once and kept with the data (0600).
            account = ChatAccount.load_or_create(data_dir / "nats" / "accounts.json")
            nats = NatsServer(
                data_dir / "nats",
                port=_port("CHAT_NATS_PORT", 4222),
                monitor_port=_port("CHAT_NATS_MONITOR_PORT", 8222),
                log_file=log_dir / "nats.log",
                accounts=[account],
            )
            log(f"starting NATS on {nats.url}")
            nats.start()
            nats_url = nats.url
        web_dir = os.environ.get("GATEWAY_WEB_DIR")
        if web_dir is None:
            try:
                built = ensure_built(Path.cwd(), log)
            except BuildFailed as e:
                log(f"the web app did not build; serving the API only:\n{e}")
                built = None
            web_dir = str(built) if built else ""
        urls = sqlite_urls(data_dir)
        for svc, var in (
            ("auth", "AUTH_DATABASE_URL"),
            ("messages", "MESSAGES_DATABASE_URL"),
            ("presence", "PRESENCE_DATABASE_URL"),
            ("media", "MEDIA_DATABASE_URL"),
        ):
            urls[svc] = os.environ.get(var) or urls[svc]
        cluster = Cluster(
            nats_url,
            nats=nats,
            database_urls=urls,
            data_dir=data_dir,
            log_dir=log_dir,
            gateways=int(os.environ.get("CHAT_GATEWAYS", "1")),
            messages_replicas=int(os.environ.get("CHAT_MESSAGES_REPLICAS", "1")),
            presence_replicas=int(os.environ.get("CHAT_PRESENCE_REPLICAS", "1")),
            gateway_port=gateway_port,
            ports={
                "auth": _port("AUTH_PORT", 8081),
                "messages": _port("MESSAGES_PORT", 8082),
                "presence": _port("PRESENCE_PORT", 8083),
                "media": _port("MEDIA_PORT", 8084),
                "search": _port("SEARCH_PORT", 8085),
                "gateway_metrics": _port("GATEWAY_METRICS_PORT", 9464),
            },
            environment="development",
            log_level=os.environ.get("CHAT_LOG_LEVEL", "INFO"),
            service_env={"gateway": {"GATEWAY_WEB_DIR": web_dir}},
        )
        log("starting auth, messages, presence, media, search, gateway")
        cluster.start()
        _banner(nats_url, cluster, data_dir)
        code = _supervise(nats, cluster)
    except _Shutdown:
        code = 0
    except ServiceFailed as e:
        log(f"startup failed: {e}")
        code = 1
    except Exception as e:
        log(f"error: {type(e).__name__}: {e}")
        code = 1
    finally:
        global _stopping
        _stopping = True  # from here on signals are ignored: we are already stopping
        _stop_all(nats, cluster)
    return code


def _supervise(nats: NatsServer | None, cluster: Cluster) -> int:
    while True:
        dead = cluster.dead()
        if nats is not None and not nats.running():
            log(f"NATS exited unexpectedly; see {nats.log_file}")
            return 1
        if dead:
            for p in dead:
                log(f"{p.name} exited unexpectedly with {p.returncode}; log {p.log_file}:")
                print(p.log_tail(20), file=sys.stderr, flush=True)
            return 1
        time.sleep(0.25)


def _stop_all(nats: NatsServer | None, cluster: Cluster | None) -> None:
    if cluster is not None:
        log("stopping gateway(s), presence, media, search, messages, auth")
        cluster.stop()
    if nats is not None:
        log("stopping NATS")
        nats.stop()
    log("stopped")


if __name__ == "__main__":
    sys.exit(main())
