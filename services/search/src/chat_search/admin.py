"""``chat-admin search ...`` (also ``python -m chat_search.admin``): the search index for operators.

    chat-admin search reindex [--no-progress]   rebuild the index from the messages store
    chat-admin search status                    the running rebuild, if any

``reindex`` is safe while the service runs and indexes live events (see
:mod:`chat_search.rebuild`): on OpenSearch it fills a new index and swaps the alias; on
SQLite FTS5 it rewrites the same file (run it where the service's ``SEARCH_FTS_PATH`` is).
It shows a progress bar (events read / events in the store) on a terminal. Ctrl-C aborts
and leaves the index as it was.

Uses the search service's settings (``SEARCH_BACKEND``, ``SEARCH_OPENSEARCH_URL``,
``SEARCH_FTS_PATH``, ``SEARCH_INDEX_PREFIX``, ``SEARCH_NATS_URL`` and its NATS credentials:
it reads the messages service over NATS as the search service does). Exit codes: 0 done,
1 another rebuild is running, 2 usage, 3 the index or NATS cannot be reached or the
rebuild failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence

from chat_bus.bus import close as close_bus
from chat_bus.bus import connect
from chat_bus.rpc import RpcClient
from chat_proto.errors import ChatError
from tqdm import tqdm

from chat_search.backends import BackendUnavailable, Position, RebuildBusy
from chat_search.backends.select import backend_from
from chat_search.indexer import stream_position
from chat_search.rebuild import rebuild
from chat_search.service import SearchService
from chat_search.settings import SearchSettings

EXIT_OK, EXIT_BUSY, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
NATS_CONNECT_TIMEOUT_S = 5.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chat-admin search", description="The search index (operators).")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reindex", help="rebuild the index from the messages store (safe while live indexing runs)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar (a line at the end only)")
    sub.add_parser("status", help="the running rebuild, if any")
    return p


async def _status(settings: SearchSettings) -> int:
    backend = backend_from(settings)
    try:
        await backend.start()
        state = await backend.rebuild_state()
    except BackendUnavailable as exc:
        print(f"chat-admin search: the index cannot be reached: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await backend.close()
    if state is None:
        print("no rebuild is running")
    else:
        age = time.time() - float(state.get("heartbeat", 0))
        print(json.dumps({**state, "heartbeat_age_s": round(age, 1)}))
    return EXIT_OK


async def _reindex(settings: SearchSettings, show_progress: bool) -> int:
    try:
        nc = await asyncio.wait_for(
            connect(settings.nats_url, "chat-admin-search", auth=settings.nats_auth("search")),
            NATS_CONNECT_TIMEOUT_S,
        )
    except Exception as exc:
        print(f"chat-admin search: cannot connect to NATS at {settings.nats_url}: {exc!r}", file=sys.stderr)
        return EXIT_FAILED
    backend = backend_from(settings)
    bar: tqdm[None] | None = None
    try:
        await backend.start()
        rpc = RpcClient(nc, settings.rpc_timeout_s)
        service = SearchService(backend, rpc, settings.convs_cache_s)
        js = nc.jetstream()

        async def position() -> Position | None:
            return await stream_position(js)

        if show_progress:
            bar = tqdm(total=0, unit="ev", unit_scale=True, desc="reindex", file=sys.stderr, dynamic_ncols=True)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.update(done - bar.n)

        result = await rebuild(
            backend,
            rpc,
            service.message,
            position,
            owner=f"chat-admin@{socket.gethostname()}:{os.getpid()}",
            progress=progress,
            stale_after_s=settings.rebuild_stale_s,
        )
    except RebuildBusy as exc:
        print(f"chat-admin search: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except (BackendUnavailable, ChatError) as exc:
        print(f"chat-admin search: reindex failed, the index is unchanged: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if bar is not None:
            bar.close()
        await backend.close()
        await close_bus(nc)
    print(
        f"reindexed {result.events} events of {result.conversations} conversations "
        f"({result.documents} messages) in {result.seconds:.1f} s"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # exits 2 on bad usage
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    settings = SearchSettings()
    if args.command == "status":
        return asyncio.run(_status(settings))
    return asyncio.run(_reindex(settings, show_progress=not args.no_progress and sys.stderr.isatty()))


if __name__ == "__main__":
    sys.exit(main())
