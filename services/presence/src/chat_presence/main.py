"""Presence service: ``create_app(settings)`` builds everything in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.app import install_error_handlers, install_ops_routes, observe_rpc
from chat_common.db import make_engine, migrate
from chat_common.logging import setup_logging
from chat_proto import bus, subjects
from chat_proto.rpc import RpcClient, RpcServer
from fastapi import FastAPI, Request
from nats.aio.client import Client as NATS

from chat_presence import rpc
from chat_presence.bus_adapters import MessagesDirectory, NatsFanout, ReportListener
from chat_presence.service import PresenceService
from chat_presence.settings import PresenceSettings
from chat_presence.state import PresenceState
from chat_presence.store import LastSeenStore

MIGRATIONS = str(Path(__file__).parent / "migrations")


def create_app(settings: PresenceSettings | None = None) -> FastAPI:
    settings = settings or PresenceSettings()
    setup_logging("presence", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, settings.db_pool_size)
        if settings.migrate_on_start:
            await migrate(engine, MIGRATIONS, "alembic_version_presence")
        nc = await bus.connect(settings.nats_url, "presence", auth=settings.nats_auth("presence"))
        store = LastSeenStore(engine)
        service = _service(settings, nc, store)
        listener = ReportListener(nc, service.on_report)
        await listener.start()
        rounds = asyncio.create_task(service.run())
        server = RpcServer(nc, subjects.PRESENCE_QUEUE, on_request=observe_rpc)
        rpc.register(server, service)
        await server.start()
        app.state.nc, app.state.store = nc, store
        try:
            yield
        finally:
            await server.stop()
            await listener.stop()
            rounds.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rounds
            await service.flush()
            await bus.close(nc)
            await engine.dispose()

    app = FastAPI(title="chat presence", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)

    async def ready(request: Request) -> dict[str, bool]:
        nc = getattr(request.app.state, "nc", None)
        checks = {"nats": bool(nc and nc.is_connected)}
        try:
            await request.app.state.store.ping()
            checks["database"] = True
        except Exception:
            checks["database"] = False
        return checks

    install_ops_routes(app, ready)
    return app


def _service(s: PresenceSettings, nc: NATS, store: LastSeenStore) -> PresenceService:
    clock = time.monotonic
    state = PresenceState(
        now=clock(), grace_s=s.offline_grace_s, dead_after=s.dead_after_intervals, warmup_s=s.warmup_s or 0.0
    )
    directory = MessagesDirectory(RpcClient(nc, s.rpc_timeout_s), s.max_fanout_members, s.convs_cache_s, clock)
    return PresenceService(
        state,
        NatsFanout(nc),
        directory,
        store,
        clock=clock,
        coalesce_s=s.coalesce_s,
        persist_interval_s=s.persist_interval_s,
    )
