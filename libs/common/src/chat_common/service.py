"""The service skeleton: a service is its settings, its routes and its optional database.

``service_app`` builds the FastAPI app every back-end service runs under uvicorn, and owns
what they all do the same way, in this order in the lifespan:

    logging -> database engine -> migrations -> NATS (the service's own user) ->
    the service's ``setup`` (its store, its RPC routes, its consumers) -> RPC server ->
    ready ... then in reverse: RPC server, background tasks (``ctx.background``), setup's exit,
    NATS drained, engine disposed.

plus ``/healthz``, ``/readyz`` (``{"nats", "database"}`` and the service's own checks) and
``/metrics`` (with the saturation metrics of chat_common.runtime_metrics: event-loop lag,
database pool, RPC requests in flight), the problem+json error handlers, and logs with the request's id and user
bound (chat_common.logging). A service's ``main.py`` is its ``setup``:

    @asynccontextmanager
    async def setup(ctx: ServiceContext[MySettings]) -> AsyncIterator[None]:
        store = MyStore(ctx.engine)
        ctx.database_check = store.ping
        ctx.rpc.route(ops.mine.DO_IT, handler)
        ctx.background(MyConsumer(ctx.nc).run(), "consumer")  # cancelled at shutdown
        yield

    def create_app(settings: MySettings | None = None) -> FastAPI:
        return service_app("mine", settings or MySettings(), setup, rpc_queue="svc-mine",
                           migrations=MIGRATIONS, version_table="alembic_version_mine")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from chat_bus import bus
from chat_bus.rpc import RpcClient, RpcServer
from fastapi import FastAPI, Request
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_common.app import install_error_handlers, install_ops_routes, observe_rpc, unexpected_error
from chat_common.db import make_engine, migrate
from chat_common.heap import freeze_startup_heap
from chat_common.logging import setup_logging
from chat_common.runtime_metrics import LoopLagMonitor, track_rpc_server
from chat_common.settings import DatabaseSettings, ServiceSettings

log = logging.getLogger("chat.service")
S = TypeVar("S", bound=ServiceSettings)
Check = Callable[[], Awaitable[object]]


@dataclass
class ServiceContext(Generic[S]):
    """What ``setup`` gets: the settings, NATS, the RPC server (add routes before it starts)
    and client, and the engine when the service has a database. ``setup`` may set the
    database check (a coroutine that raises when the database is unusable) and add checks."""

    name: str
    settings: S
    nc: NATS
    rpc: RpcServer
    client: RpcClient
    engine: AsyncEngine | None = None
    database_check: Check | None = None
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def background(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        """Run ``coro`` for the life of the service (a consumer, a periodic job). At shutdown
        the skeleton cancels it and waits for it, after the RPC server stopped and before
        ``setup``'s own exit (which may then close what the task used)."""
        self.tasks.append(asyncio.create_task(coro, name=f"{self.name}:{name}"))

    async def stop_background(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t, res in zip(self.tasks, await asyncio.gather(*self.tasks, return_exceptions=True), strict=True):
            if isinstance(res, Exception):
                log.error("background task %s failed", t.get_name(), exc_info=res)
        self.tasks.clear()


Setup = Callable[[ServiceContext[S]], AbstractAsyncContextManager[None]]


def service_app(
    name: str,
    settings: S,
    setup: Setup[S],
    *,
    rpc_queue: str,
    migrations: str | None = None,
    version_table: str | None = None,
    rpc_timeout_s: float = 5.0,
) -> FastAPI:
    setup_logging(name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = _engine(settings)
        loop_lag = LoopLagMonitor()  # chat_event_loop_lag_seconds
        loop_lag.start()
        try:
            if engine is not None and migrations and isinstance(settings, DatabaseSettings):
                if settings.migrate_on_start:
                    await migrate(engine, migrations, version_table or f"alembic_version_{name}")
            nc = await bus.connect(settings.nats_url, name, auth=settings.nats_auth(name))
            try:
                server = RpcServer(nc, rpc_queue, on_request=observe_rpc, errors=unexpected_error)
                track_rpc_server(server)
                ctx = ServiceContext(name, settings, nc, server, RpcClient(nc, rpc_timeout_s), engine)
                async with setup(ctx):
                    await server.start()
                    app.state.ctx = ctx
                    freeze_startup_heap()  # heap.py: full collections skip start-up's objects
                    try:
                        yield
                    finally:
                        await server.stop()
                        await ctx.stop_background()
            finally:
                await bus.close(nc)
        finally:
            if engine is not None:
                await engine.dispose()
            await loop_lag.stop()

    app = FastAPI(title=f"chat {name}", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    install_ops_routes(app, _ready)
    return app


def _engine(settings: ServiceSettings) -> AsyncEngine | None:
    if isinstance(settings, DatabaseSettings):
        return make_engine(settings.database_url, settings.db_pool_size)
    return None


async def _ready(request: Request) -> dict[str, bool]:
    ctx: ServiceContext[ServiceSettings] | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        return {"nats": False}
    checks = {"nats": ctx.nc.is_connected}
    if ctx.database_check is not None:
        try:
            await ctx.database_check()
            checks["database"] = True
        except Exception:
            checks["database"] = False
    checks |= {k: bool(check()) for k, check in ctx.checks.items()}
    return checks
