"""Media service on the service skeleton: store, storage, RPC, gateways' HTTP, refs, collector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.service import ServiceContext, service_app
from chat_proto import subjects
from fastapi import FastAPI

from chat_media import http, rpc
from chat_media.refs import RefsConsumer
from chat_media.service import MediaService
from chat_media.settings import MediaSettings
from chat_media.storage import storage_from
from chat_media.store import MediaStore

MIGRATIONS = str(Path(__file__).parent / "migrations")


def create_app(settings: MediaSettings | None = None) -> FastAPI:
    s = settings or MediaSettings()
    holder: list[MediaService] = []

    @asynccontextmanager
    async def setup(ctx: ServiceContext[MediaSettings]) -> AsyncIterator[None]:
        assert ctx.engine is not None
        store = MediaStore(ctx.engine)
        storage = await storage_from(s)
        ctx.database_check = store.ping
        service = MediaService(s, store, storage, ctx.client)
        holder.append(service)
        rpc.register(ctx.rpc, service)
        refs = RefsConsumer(ctx.nc, service.on_event)
        ctx.background(refs.run(), "refs")
        ctx.background(service.collect_forever(), "gc")
        ctx.checks["events"] = lambda: refs.ready
        try:
            yield
        finally:
            service.close()

    app = service_app(
        "media",
        s,
        setup,
        rpc_queue=subjects.MEDIA_QUEUE,
        migrations=MIGRATIONS,
        version_table="alembic_version_media",
        rpc_timeout_s=s.rpc_timeout_s,
    )
    app.include_router(http.router(s, lambda: holder[0]))
    return app
