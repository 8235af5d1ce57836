"""App factory: ops routes over HTTP; the auth API itself is NATS RPC only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.app import install_error_handlers, install_ops_routes, observe_rpc
from chat_common.db import make_engine, migrate
from chat_common.logging import setup_logging
from chat_proto.bus import close as close_bus
from chat_proto.bus import connect
from fastapi import FastAPI, Request

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.publish import NatsRevocationPublisher
from chat_auth.rpc import make_rpc_server
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_auth"


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    cfg = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging("auth", cfg.log_level)
        engine = make_engine(cfg.database_url, cfg.db_pool_size)
        try:
            if cfg.migrate_on_start:
                await migrate(engine, MIGRATIONS, VERSION_TABLE)
            store = AuthStore(engine)
            service = AuthService(cfg, store)
            await service.ensure_signing_key()
            nc = await connect(cfg.nats_url, "chat-auth", auth=cfg.nats_auth("auth"))
            accounts = AccountsService(AccountsStore(engine), NatsRevocationPublisher(nc))
            rpc = make_rpc_server(nc, service, on_request=observe_rpc, accounts=accounts)
            await rpc.start()
            app.state.store, app.state.service, app.state.nc = store, service, nc
            try:
                yield
            finally:
                await rpc.stop()
                await close_bus(nc)
        finally:
            await engine.dispose()

    async def ready(request: Request) -> dict[str, bool]:
        state = request.app.state
        nc = getattr(state, "nc", None)
        store: AuthStore | None = getattr(state, "store", None)
        return {
            "nats": bool(nc is not None and nc.is_connected),
            "db": bool(store is not None and await store.ping()),
        }

    app = FastAPI(title="chat-auth", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    install_ops_routes(app, ready)
    return app
