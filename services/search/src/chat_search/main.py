"""Search service on the service skeleton: the index backend, the indexer, the query RPC."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from chat_common.service import ServiceContext, service_app
from chat_proto import subjects
from fastapi import FastAPI

from chat_search import rpc
from chat_search.backends.select import backend_from
from chat_search.indexer import Indexer, stream_position
from chat_search.rebuild import rebuild
from chat_search.service import SearchService
from chat_search.settings import SearchSettings


@asynccontextmanager
async def setup(ctx: ServiceContext[SearchSettings]) -> AsyncIterator[None]:
    s = ctx.settings
    backend = backend_from(s)
    await backend.start()
    ctx.database_check = backend.ping
    service = SearchService(backend, ctx.client, s.convs_cache_s)
    rpc.register(ctx.rpc, service)
    position = partial(stream_position, ctx.nc.jetstream())
    owner = f"search@{socket.gethostname()}:{os.getpid()}"
    rebuild_now = partial(
        rebuild, backend, ctx.client, service.message, position, owner=owner, stale_after_s=s.rebuild_stale_s
    )
    indexer = Indexer(
        backend,
        service.message,
        batch=s.batch,
        window_s=s.batch_window_s,
        rebuild=rebuild_now,
        gap_check_s=s.gap_check_s,
        inflight=s.inflight,
        ack_wait_s=s.ack_wait_s,
    )
    ctx.background(indexer.run(ctx.nc), "indexer")
    ctx.checks["events"] = lambda: indexer.ready
    try:
        yield
    finally:
        await backend.close()


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    s = settings or SearchSettings()
    return service_app("search", s, setup, rpc_queue=subjects.SEARCH_QUEUE, rpc_timeout_s=s.rpc_timeout_s)
