"""Rebuild the index from the messages store, while live indexing goes on.

Used by ``chat-admin search reindex`` (an operator: new mappings, a restored cluster, a
recreated event stream) and by the indexer when it finds events the stream lost.

1. Take the backend's rebuild lock and create the new copy
   (:meth:`~chat_search.backends.SearchBackend.begin_rebuild`); from then on every live write
   also goes into the new copy.
2. Note the event stream's last sequence: every event up to it is in the store already (the
   messages service publishes after it commits), so the finished copy covers it.
3. Read every conversation (``internal.all_convs``, by id) and its whole log
   (``internal.events``, 500 at a time, in seq order), fold the events exactly as the
   live indexer does (messages, edits, deletes) and write them into the new copy. Versions
   make the order of these writes and of the live ones irrelevant: the newest event wins.
   A reader and a writer run side by side with at most a few pages between them.
4. Finish: the new copy becomes the one searched, the old one is dropped, the position from
   step 2 is stored.

A failure (or Ctrl-C) aborts: the new copy is dropped and the current one stays as it was.
Progress (events read / events in the store) goes to the lock's heartbeat, so another
process can show it and take over a rebuild whose heartbeat stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chat_bus.rpc import RpcClient
from chat_proto import ops
from chat_proto.messages_api import ConvScan, EventsRange

from chat_search.backends import Position, SearchBackend
from chat_search.indexer import FetchMessage, fold

log = logging.getLogger("chat.search.rebuild")
PAGE = 500  # events per internal.events call (its maximum)
CONV_PAGE = 1000  # conversations per internal.all_convs call (its maximum)
HEARTBEAT_S = 2.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildResult:
    conversations: int
    events: int
    documents: int
    seconds: float


async def rebuild(
    backend: SearchBackend,
    rpc: RpcClient,
    fetch: FetchMessage,
    stream_position: Callable[[], Awaitable[Position | None]],
    *,
    owner: str,
    progress: Progress | None = None,
    stale_after_s: float = 60.0,
) -> RebuildResult:
    """Rebuild the index (see the module doc). Raises ``RebuildBusy`` when one is running."""
    started = time.monotonic()
    target = await backend.begin_rebuild(owner, stale_after_s)
    log.info("rebuild started", extra={"owner": owner})
    try:
        position = await stream_position()
        convs = await _all_convs(rpc)
        total = sum(last for _, last in convs)
        done = documents = 0
        beat = time.monotonic()
        await target.progress(0, total)
        if progress is not None:
            progress(0, total)
        pages: asyncio.Queue[tuple[int, list[dict[str, Any]]] | None] = asyncio.Queue(maxsize=4)
        reader = asyncio.create_task(_read(rpc, convs, pages))
        try:
            while (item := await pages.get()) is not None:
                read, events = item
                docs, removals = await fold(events, fetch)
                await target.write(docs, removals)
                done += read
                documents += len(docs)
                if progress is not None:
                    progress(done, total)
                if time.monotonic() - beat >= HEARTBEAT_S:
                    await target.progress(done, total)
                    beat = time.monotonic()
            await reader  # its exception, if it failed
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await target.progress(done, total)
        await target.finish(position)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(target.abort())
        log.warning("rebuild aborted: the index stays as it was", exc_info=True)
        raise
    result = RebuildResult(len(convs), done, documents, time.monotonic() - started)
    log.info("rebuild finished", extra=result.__dict__)
    return result


async def _all_convs(rpc: RpcClient) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    after: str | None = None
    while True:
        page = await rpc.request(ops.messages.ALL_CONVS, ConvScan(after=after, limit=CONV_PAGE))
        out += [(c.id, c.last_seq) for c in page.convs]
        if page.next is None:
            return out
        after = page.next


async def _read(
    rpc: RpcClient, convs: list[tuple[str, int]], pages: asyncio.Queue[tuple[int, list[dict[str, Any]]] | None]
) -> None:
    """Every conversation's log, a page at a time, into ``pages``; None at the end. A page
    reports how far into the conversation's ``last_seq`` (as counted at the start) it got."""
    try:
        for conv, last in convs:
            after = 0
            while True:
                res = await rpc.request(ops.messages.EVENTS, EventsRange(conv=conv, after=after, limit=PAGE))
                events = [ops.wire(e) for e in res.events]
                if not events:
                    await pages.put((max(0, last - after), []))
                    break
                seq = int(events[-1]["seq"])
                await pages.put((max(0, min(seq, last) - after), events))
                after = seq
                if len(events) < PAGE:
                    await pages.put((max(0, last - after), []))
                    break
    finally:
        await pages.put(None)  # the writer drains the queue (or it failed and cancelled this)
