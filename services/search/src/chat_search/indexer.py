"""What search indexes, learned from the event stream: a durable pull consumer of CHAT_EVENTS
(``search-index``, shared by every search replica), read in batches.

- ``message`` → the document ``conv:seq`` (idempotent): body, sender, time, attachment names,
  and the event as clients get it;
- ``edit`` → the edited message's document again with the new text (the message itself is
  asked of messages, ``internal.events``, when it is not in the same batch);
- ``delete`` → the message's document is removed (its edits lose their text too);
- membership events change nothing here: who may find what is decided at query time from the
  caller's conversations.

A batch is written with one bulk call (documents with versions, and the stream position it
covers) and acked after it; a failure (index down) naks it for later: the backlog drains when
the index is back. Indexing lag (event time → indexed) is a histogram.

**Redelivery.** The consumer's ``ack_wait`` is short (``SEARCH_ACK_WAIT_S``, 10 s): events a
killed replica held, or that a NATS restart lost on the way, are delivered again (to any
replica) that soon, not after a minute. What a live replica holds longer than a third of it
(queued behind a backlog, or in a slow bulk write) is kept alive with in-progress acks, so a
busy index is never a reason for redelivery.

**Gaps.** At start and every ``gap_check_s`` the indexer compares the stored position with
the stream: events below the stream's first sequence that were never indexed (the stream's
retention dropped them while search was down or behind; search deployed on a system with
older history), or acked by the consumer but missing from the index (an index restored from
an older snapshot, or wiped), are lost to the stream. It counts them in
``chat_search_events_lost_total`` and rebuilds the index from the messages store
(:mod:`chat_search.rebuild`), unless a rebuild is already running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from chat_bus.pull import PullStream
from chat_proto import subjects
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Histogram

from chat_search.backends import Doc, Position, RebuildBusy, Removal, SearchBackend

log = logging.getLogger("chat.search.indexer")
INDEXED = Counter("chat_search_events_total", "Conversation events read for the index", ["kind", "outcome"])
LOST = Counter(
    "chat_search_events_lost_total",
    "Conversation events the stream no longer held when search looked for them (a rebuild follows)",
)
LAG = Histogram(
    "chat_search_index_lag_seconds",
    "Event time to indexed",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

# (conv, seq) -> the message event as stored (for an edit whose message is not in the batch)
FetchMessage = Callable[[str, int], Awaitable[dict[str, Any] | None]]
# rebuild the index from the messages store (raises RebuildBusy when one is running)
Rebuild = Callable[[], Awaitable[object]]


ACK_WAIT_S = 10.0


def consumer_config(ack_wait_s: float = ACK_WAIT_S) -> ConsumerConfig:
    """The index consumer (created, or updated in place when it exists: ``ack_wait`` is
    editable)."""
    return ConsumerConfig(
        durable_name=subjects.SEARCH_EVENTS_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_deliver=-1,
        max_ack_pending=20_000,
        filter_subject=subjects.EVT_SUBJECTS,
    )


def doc_of(ev: dict[str, Any], body: str | None = None, version: int = 0) -> Doc:
    event = dict(ev)
    if body is not None:
        event["body"] = body
    names = [str(a.get("name") or "") for a in ev.get("attachments") or [] if isinstance(a, dict)]
    return Doc(
        conv=ev["conv"],
        seq=int(ev["seq"]),
        sender=str(ev.get("sender") or ""),
        ts=str(ev["ts"]),
        body=str(event.get("body") or ""),
        attachments=[n for n in names if n],
        event=event,
        version=version,
    )


async def fold(events: list[dict[str, Any]], fetch: FetchMessage) -> tuple[list[Doc], list[Removal]]:
    """What ``events`` (in log order) change in the index: the documents to write (each
    with the version of the newest event it reflects) and the removals."""
    docs: dict[tuple[str, int], Doc] = {}
    gone: dict[tuple[str, int], int] = {}
    for ev in events:
        kind, seq = ev.get("kind"), int(ev["seq"])
        if kind == "message" and not ev.get("deleted"):
            key = (ev["conv"], seq)
            if key not in gone:
                docs[key] = doc_of(ev, version=seq)
        elif kind == "edit" and isinstance(ev.get("target"), int):
            target = (ev["conv"], ev["target"])
            if target in gone:
                continue
            base = docs[target].event if target in docs else await fetch(*target)
            if base is not None and not base.get("deleted"):
                docs[target] = doc_of(base, body=str(ev.get("body") or ""), version=seq)
        elif kind == "delete" and isinstance(ev.get("target"), int):
            target = (ev["conv"], ev["target"])
            docs.pop(target, None)
            gone[target] = seq
    return list(docs.values()), [Removal(c, s, v) for (c, s), v in gone.items()]


class Indexer:
    def __init__(
        self,
        backend: SearchBackend,
        fetch: FetchMessage,
        *,
        batch: int = 2000,
        window_s: float = 0.05,
        rebuild: Rebuild | None = None,
        gap_check_s: float = 60.0,
        inflight: int = 2,
        ack_wait_s: float = ACK_WAIT_S,
    ) -> None:
        self.backend = backend
        self.fetch = fetch
        self.batch = batch
        self.window_s = window_s
        self.rebuild = rebuild
        self.gap_check_s = gap_check_s
        self.ack_wait_s = ack_wait_s
        # batches written at once: versions make their order irrelevant, and a second bulk
        # in flight keeps the index busy while the first one's answer travels back
        self._slots = asyncio.Semaphore(max(1, inflight))
        self._writes: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        # every message taken and not yet acked, nacked or terminated: id -> (msg, taken at)
        self._held: dict[int, tuple[Msg, float]] = {}
        self._stream = ""  # the event stream's identity (its creation time)
        self.ready = False

    async def run(self, nc: NATS) -> None:
        js = nc.jetstream()
        while True:  # the stream is created by the messages service: wait for it
            try:
                await js.add_consumer(subjects.EVT_STREAM, consumer_config(self.ack_wait_s))
                break
            except Exception as exc:
                log.info("event stream not ready yet", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
        self._stream = (await stream_position(js)).stream
        pull = PullStream(nc, subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER, self._take, batch=1024)
        await pull.start()
        self.ready = True
        gaps = asyncio.create_task(self._watch_gaps(js))
        alive = asyncio.create_task(self._keep_alive())
        try:
            while True:
                msgs = [await self._queue.get()]
                deadline = time.monotonic() + self.window_s
                while len(msgs) < self.batch:
                    left = deadline - time.monotonic()
                    if self._queue.empty() and left <= 0:
                        break
                    try:
                        if self._queue.empty():
                            msgs.append(await asyncio.wait_for(self._queue.get(), left))
                        else:
                            msgs.append(self._queue.get_nowait())
                    except TimeoutError:
                        break
                await self._slots.acquire()
                task = asyncio.create_task(self._apply_then_release(msgs))
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
        finally:
            gaps.cancel()
            alive.cancel()
            for task in list(self._writes):
                task.cancel()
            await pull.stop()

    def _take(self, m: Msg) -> None:
        self._held[id(m)] = (m, time.monotonic())
        self._queue.put_nowait(m)

    async def _apply_then_release(self, msgs: list[Msg]) -> None:
        try:
            await self._apply(msgs)
        except Exception as exc:  # never silently: the messages come again after ack_wait
            log.warning("index batch failed", extra={"error": repr(exc), "events": len(msgs)})
        finally:
            for m in msgs:  # settled, or left to redelivery
                self._held.pop(id(m), None)
            self._slots.release()

    async def _keep_alive(self) -> None:
        """In-progress acks for what is held longer than a third of ``ack_wait``."""
        every = self.ack_wait_s / 3
        while True:
            await asyncio.sleep(every)
            old = time.monotonic() - every
            for key, (m, taken) in list(self._held.items()):
                if taken > old or key not in self._held:
                    continue
                try:
                    await m.in_progress()
                except Exception as exc:  # NATS away: the held events may come again, harmless
                    log.info("in-progress acks not sent", extra={"error": repr(exc)})
                    break

    async def _watch_gaps(self, js: Any) -> None:
        while True:
            try:
                await self.check_gap(js)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS or the index unreachable: next time
                log.warning("gap check failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.gap_check_s)

    async def check_gap(self, js: Any) -> int:
        """Events lost to the stream (see the module doc); rebuild when there are. Returns the
        number counted (0: none, or a rebuild is already running elsewhere)."""
        consumer = await js.consumer_info(subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER)
        info = await js.stream_info(subjects.EVT_STREAM)
        stored = await self.backend.position(_stream_of(info))  # read after the consumer's floor: never older
        floor = consumer.ack_floor.stream_seq if consumer.ack_floor and consumer.ack_floor.stream_seq else 0
        first = int(info.state.first_seq or 1)
        lost = max(first - 1 - (stored or 0), floor - (stored or 0), 0)
        if lost == 0 or self.rebuild is None:
            return 0
        log.warning(
            "events were lost to the stream before they were indexed; rebuilding from the messages store",
            extra={"lost": lost, "stream_first_seq": first, "indexed_up_to": stored, "consumer_ack_floor": floor},
        )
        try:
            await self.rebuild()
        except RebuildBusy:
            log.info("a rebuild is already running")
            return 0
        except Exception:
            LOST.inc(lost)  # counted even when the rebuild failed (it is tried again next time)
            raise
        LOST.inc(lost)
        return lost

    async def _apply(self, msgs: list[Msg]) -> None:
        events: list[tuple[Msg, dict[str, Any]]] = []
        for m in msgs:
            try:
                ev = orjson.loads(m.data)
                if not isinstance(ev, dict) or not isinstance(ev.get("seq"), int) or "conv" not in ev:
                    raise ValueError("not an event")
            except ValueError:
                INDEXED.labels("?", "undecodable").inc()
                await m.term()
                continue
            events.append((m, ev))
        seqs = [m.metadata.sequence.stream for m, _ in events if m.metadata.sequence is not None]
        position = Position(self._stream, max(seqs)) if seqs and self._stream else None
        try:
            await self.index([ev for _, ev in events], position)
        except Exception as exc:  # the index is down: everything comes again later
            log.warning("index write failed; retrying later", extra={"error": repr(exc), "events": len(events)})
            for m, _ in events:
                try:
                    await m.nak(delay=2.0)
                except Exception:  # NATS away: redelivered after ack_wait instead
                    break
            return
        now = time.time()
        for m, ev in events:
            INDEXED.labels(str(ev.get("kind")), "ok").inc()
            try:
                LAG.observe(max(0.0, now - _epoch(ev["ts"])))
            except (KeyError, ValueError):
                pass
            await m.ack()

    async def index(self, events: list[dict[str, Any]], position: Position | None = None) -> None:
        """Apply ``events`` (in log order) to the index in one write, with ``position``."""
        docs, removals = await fold(events, self.fetch)
        await self.backend.write(docs, removals, position)


async def stream_position(js: Any) -> Position:
    """The event stream's identity (its creation time) and last sequence, now."""
    info = await js.stream_info(subjects.EVT_STREAM)
    return Position(_stream_of(info), int(info.state.last_seq or 0))


def _stream_of(info: Any) -> str:
    return info.created.isoformat() if info.created is not None else "unknown"


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
