"""Which messages reference which uploads, learned from the event stream: a durable pull
consumer of CHAT_EVENTS (``media-refs``, shared by every media replica) read with the
continuous pull of ``chat_bus.pull`` (events arrive as they are published). Message events
with attachments add references, ``delete`` events remove them; each event is acked once
applied, and retried later when the store failed. The service never reads the messages
service's tables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from chat_bus.pull import PullStream
from chat_proto import subjects
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter

log = logging.getLogger("chat.media.refs")
EVENTS = Counter("chat_media_events_total", "Conversation events read for references", ["outcome"])


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=subjects.MEDIA_EVENTS_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=30.0,
        max_deliver=-1,
        max_ack_pending=4096,
        filter_subject=subjects.EVT_SUBJECTS,
    )


class RefsConsumer:
    def __init__(self, nc: NATS, on_event: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.nc = nc
        self.on_event = on_event
        self.ready = False
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._pull: PullStream | None = None

    async def run(self) -> None:
        js = self.nc.jetstream()
        while True:  # the stream is created by the messages service: wait for it
            try:
                await js.add_consumer(subjects.EVT_STREAM, consumer_config())
                break
            except Exception as exc:
                log.info("event stream not ready yet", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
        self._pull = PullStream(
            self.nc, subjects.EVT_STREAM, subjects.MEDIA_EVENTS_CONSUMER, self._queue.put_nowait, batch=256
        )
        await self._pull.start()
        self.ready = True
        try:
            while True:
                await self._apply(await self._queue.get())
        finally:
            await self._pull.stop()

    async def _apply(self, msg: Msg) -> None:
        try:
            ev = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            EVENTS.labels("undecodable").inc()
            await msg.term()
            return
        try:
            if isinstance(ev, dict):
                await self.on_event(ev)
        except Exception:  # the store is down: redelivered a little later
            EVENTS.labels("failed").inc()
            log.exception("event not applied", extra={"subject": msg.subject})
            await msg.nak(delay=2.0)
            return
        EVENTS.labels("ok").inc()
        await msg.ack()
