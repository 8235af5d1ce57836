"""Search service on the service skeleton: the index backend, the indexer, the query RPC."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.service import ServiceContext, service_app
from chat_proto import subjects
from fastapi import FastAPI

from chat_search import rpc
from chat_search.backends import Position, SearchBackend
from chat_search.indexer import Indexer, stream_position
from chat_search.rebuild import RebuildResult, rebuild
from chat_search.service import SearchService
from chat_search.settings import SearchSettings


def backend_from(s: SearchSettings) -> SearchBackend:
    if s.backend == "opensearch":
        from chat_search.backends.opensearch import OpenSearchBackend

        auth = (s.opensearch_user, s.opensearch_password.get_secret_value()) if s.opensearch_user else None
        return OpenSearchBackend(
            s.opensearch_url,
            index_prefix=s.index_prefix,
            shards=s.index_shards,
            replicas=s.index_replicas,
            http_auth=auth,
        )
    from chat_search.backends.fts import FtsBackend

    Path(s.fts_path).parent.mkdir(parents=True, exist_ok=True)
    return FtsBackend(s.fts_path, readers=s.fts_readers)


@asynccontextmanager
async def setup(ctx: ServiceContext[SearchSettings]) -> AsyncIterator[None]:
    s = ctx.settings
    backend = backend_from(s)
    await backend.start()
    ctx.database_check = backend.ping
    service = SearchService(backend, ctx.client, s.convs_cache_s)
    rpc.register(ctx.rpc, service)
    js = ctx.nc.jetstream()

    async def position() -> Position | None:
        return await stream_position(js)

    async def rebuild_now() -> RebuildResult:
        return await rebuild(
            backend,
            ctx.client,
            service.message,
            position,
            owner=f"search@{socket.gethostname()}:{os.getpid()}",
            stale_after_s=s.rebuild_stale_s,
        )

    indexer = Indexer(
        backend,
        service.message,
        batch=s.batch,
        window_s=s.batch_window_s,
        rebuild=rebuild_now,
        gap_check_s=s.gap_check_s,
        inflight=s.inflight,
    )
    task = asyncio.create_task(indexer.run(ctx.nc))
    ctx.checks["events"] = lambda: indexer.ready
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.close()


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    s = settings or SearchSettings()
    return service_app("search", s, setup, rpc_queue=subjects.SEARCH_QUEUE, rpc_timeout_s=s.rpc_timeout_s)
