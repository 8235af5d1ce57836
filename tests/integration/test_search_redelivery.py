"""The search indexer on a real NATS and a real SQLite FTS5 index: what it holds is kept
alive while a slow index write runs (no redelivery, no duplicate work), and what a crashed
indexer held comes back within the consumer's ``ack_wait`` (``SEARCH_ACK_WAIT_S``), not a
minute later. An existing consumer made with another ``ack_wait`` is updated at start."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from chat_bus import bus, streams
from chat_devtools.nats import NatsServer
from chat_proto import subjects
from chat_search.backends import Doc, Position, Removal
from chat_search.backends.fts import FtsBackend
from chat_search.indexer import Indexer, consumer_config
from nats.aio.client import Client as NATS

pytestmark = pytest.mark.timeout(90)

ACK_WAIT_S = 1.5


class SlowFts(FtsBackend):
    """The real FTS5 backend, with each write held until ``release`` is set, and every
    document it was given counted."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, readers=0)
        self.release = asyncio.Event()
        self.given: Counter[tuple[str, int]] = Counter()
        self.writing = asyncio.Event()

    async def write(self, docs: list[Doc], removals: list[Removal], position: Position | None = None) -> None:
        self.given.update((d.conv, d.seq) for d in docs)
        self.writing.set()
        await self.release.wait()
        await super().write(docs, removals, position)


async def _no_fetch(conv: str, seq: int) -> dict[str, Any] | None:
    return None


def _event(conv: str, seq: int) -> bytes:
    return orjson.dumps(
        {"kind": "message", "conv": conv, "seq": seq, "sender": "u1", "ts": "2026-01-01T00:00:00Z", "body": f"w{seq}"}
    )


async def _publish(nc: NATS, conv: str, seqs: range) -> None:
    js = nc.jetstream()
    await js.add_stream(streams.evt_stream())
    for seq in seqs:
        await js.publish(subjects.evt_conv(conv), _event(conv, seq))


async def _indexed(backend: FtsBackend, conv: str, want: int, within: float) -> int:
    deadline = time.monotonic() + within
    while True:
        rows = await backend._read("SELECT count(*) FROM search_docs WHERE conv = ?", (conv,))
        if int(rows[0][0]) >= want or time.monotonic() > deadline:
            return int(rows[0][0])
        await asyncio.sleep(0.05)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_slow_write_is_kept_alive_not_redelivered(nats: NatsServer, tmp_path: Path) -> None:
    nc = await bus.connect(nats.url, "search-test")
    backend = SlowFts(tmp_path / "search.db")
    await backend.start()
    task: asyncio.Task[None] | None = None
    try:
        indexer = Indexer(backend, _no_fetch, window_s=0.05, ack_wait_s=ACK_WAIT_S, gap_check_s=3600)
        task = asyncio.create_task(indexer.run(nc))
        await _publish(nc, "c1", range(1, 6))
        await asyncio.wait_for(backend.writing.wait(), 10)
        await asyncio.sleep(3 * ACK_WAIT_S)  # the write is held for twice the ack_wait and more
        backend.release.set()
        assert await _indexed(backend, "c1", 5, within=10) == 5
        info = await nc.jetstream().consumer_info(subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER)
        assert info.num_redelivered == 0 and info.num_ack_pending == 0, info
        assert set(backend.given.values()) == {1}, backend.given  # each event written once
    finally:
        if task is not None:
            await _stop(task)
        await backend.close()
        await nc.close()


async def test_what_a_crashed_indexer_held_comes_back_within_ack_wait(nats: NatsServer, tmp_path: Path) -> None:
    nc = await bus.connect(nats.url, "search-test")
    js = nc.jetstream()
    await js.add_stream(streams.evt_stream())
    await js.add_consumer(subjects.EVT_STREAM, consumer_config(60.0))  # as an older release made it
    stuck = SlowFts(tmp_path / "a.db")  # never released: this indexer dies holding its batch
    healthy = FtsBackend(tmp_path / "b.db", readers=0)
    crashed_nc = await bus.connect(nats.url, "search-crashing")
    crashed: asyncio.Task[None] | None = None
    survivor: asyncio.Task[None] | None = None
    try:
        await stuck.start()
        await healthy.start()
        crashed = asyncio.create_task(
            Indexer(stuck, _no_fetch, ack_wait_s=ACK_WAIT_S, gap_check_s=3600).run(crashed_nc)
        )
        info = await js.consumer_info(subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER)
        deadline = time.monotonic() + 10
        while info.config.ack_wait != ACK_WAIT_S and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            info = await js.consumer_info(subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER)
        assert info.config.ack_wait == ACK_WAIT_S  # the existing consumer was updated
        await _publish(nc, "c1", range(1, 4))
        await asyncio.wait_for(stuck.writing.wait(), 10)
        # the crash: its task stops without settling anything (no ack, no nak), its
        # connection goes away
        await _stop(crashed)
        await crashed_nc.close()
        t0 = time.monotonic()
        survivor = asyncio.create_task(Indexer(healthy, _no_fetch, ack_wait_s=ACK_WAIT_S, gap_check_s=3600).run(nc))
        # ack_wait and the time to notice it; far below the minute of the old consumer
        assert await _indexed(healthy, "c1", 3, within=20 * ACK_WAIT_S) == 3
        assert time.monotonic() - t0 < 20 * ACK_WAIT_S
    finally:
        if survivor is not None:
            await _stop(survivor)
        if crashed is not None and not crashed.done():
            await _stop(crashed)
        await crashed_nc.close()
        await stuck.close()
        await healthy.close()
        await nc.close()
