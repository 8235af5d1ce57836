"""What search indexes, learned from the event stream: a durable pull consumer of CHAT_EVENTS
(``search-index``, shared by every search replica), read in batches.

- ``message`` → the document ``conv:seq`` (idempotent): body, sender, time, attachment names,
  and the event as clients get it;
- ``edit`` → the edited message's document again with the new text (the message itself is
  asked of messages, ``internal.events``, when it is not in the same batch);
- ``delete`` → the message's document is removed (its edits lose their text too);
- membership events change nothing here: who may find what is decided at query time from the
  caller's conversations.

A batch is written with one bulk call and acked after it; a failure (index down) naks it for
later: the backlog drains when the index is back. Indexing lag (event time → indexed) is a
histogram.
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

from chat_search.backends import Doc, SearchBackend

log = logging.getLogger("chat.search.indexer")
INDEXED = Counter("chat_search_events_total", "Conversation events read for the index", ["kind", "outcome"])
LAG = Histogram(
    "chat_search_index_lag_seconds",
    "Event time to indexed",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

# (conv, seq) -> the message event as stored (for an edit whose message is not in the batch)
FetchMessage = Callable[[str, int], Awaitable[dict[str, Any] | None]]


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=subjects.SEARCH_EVENTS_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=60.0,
        max_deliver=-1,
        max_ack_pending=20_000,
        filter_subject=subjects.EVT_SUBJECTS,
    )


def doc_of(ev: dict[str, Any], body: str | None = None) -> Doc:
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
    )


class Indexer:
    def __init__(
        self, backend: SearchBackend, fetch: FetchMessage, *, batch: int = 500, window_s: float = 0.05
    ) -> None:
        self.backend = backend
        self.fetch = fetch
        self.batch = batch
        self.window_s = window_s
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self.ready = False

    async def run(self, nc: NATS) -> None:
        js = nc.jetstream()
        while True:  # the stream is created by the messages service: wait for it
            try:
                await js.add_consumer(subjects.EVT_STREAM, consumer_config())
                break
            except Exception as exc:
                log.info("event stream not ready yet", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
        pull = PullStream(nc, subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER, self._queue.put_nowait, batch=1024)
        await pull.start()
        self.ready = True
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
                await self._apply(msgs)
        finally:
            await pull.stop()

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
        try:
            await self.index([ev for _, ev in events])
        except Exception as exc:  # the index is down: everything comes again later
            log.warning("index write failed; retrying later", extra={"error": repr(exc), "events": len(events)})
            for m, _ in events:
                await m.nak(delay=2.0)
            return
        now = time.time()
        for m, ev in events:
            INDEXED.labels(str(ev.get("kind")), "ok").inc()
            try:
                LAG.observe(max(0.0, now - _epoch(ev["ts"])))
            except (KeyError, ValueError):
                pass
            await m.ack()

    async def index(self, events: list[dict[str, Any]]) -> None:
        """Apply ``events`` (in log order) to the index: documents written in one bulk."""
        docs: dict[tuple[str, int], Doc] = {}
        gone: set[tuple[str, int]] = set()
        for ev in events:
            kind, key = ev.get("kind"), (ev["conv"], int(ev["seq"]))
            if kind == "message" and not ev.get("deleted"):
                docs[key] = doc_of(ev)
                gone.discard(key)
            elif kind == "edit" and isinstance(ev.get("target"), int):
                target = (ev["conv"], ev["target"])
                if target in gone:
                    continue
                base = docs[target].event if target in docs else await self.fetch(*target)
                if base is not None and not base.get("deleted"):
                    docs[target] = doc_of(base, body=str(ev.get("body") or ""))
            elif kind == "delete" and isinstance(ev.get("target"), int):
                target = (ev["conv"], ev["target"])
                docs.pop(target, None)
                gone.add(target)
        if docs:
            await self.backend.upsert(list(docs.values()))
        if gone:
            await self.backend.delete(sorted(gone))


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
