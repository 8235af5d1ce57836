"""Presence service: its store, its RPC route, the gateways' reports and the rounds that
publish presence frames, on the service skeleton (chat_common.service)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.service import ServiceContext, service_app
from chat_proto import subjects
from fastapi import FastAPI

from chat_presence import rpc
from chat_presence.bus_adapters import ReportListener, presence_service
from chat_presence.settings import PresenceSettings
from chat_presence.store import LastSeenStore

MIGRATIONS = str(Path(__file__).parent / "migrations")


@asynccontextmanager
async def setup(ctx: ServiceContext[PresenceSettings]) -> AsyncIterator[None]:
    assert ctx.engine is not None
    store = LastSeenStore(ctx.engine)
    ctx.database_check = store.ping
    service = presence_service(ctx.settings, ctx.nc, store)
    listener = ReportListener(ctx.nc, service.on_report)
    await listener.start()
    ctx.background(service.run(), "rounds")
    rpc.register(ctx.rpc, service)
    try:
        yield
    finally:
        await listener.stop()
        await service.flush()


def create_app(settings: PresenceSettings | None = None) -> FastAPI:
    s = settings or PresenceSettings()
    return service_app(
        "presence",
        s,
        setup,
        rpc_queue=subjects.PRESENCE_QUEUE,
        migrations=MIGRATIONS,
        version_table="alembic_version_presence",
        rpc_timeout_s=s.rpc_timeout_s,
    )
