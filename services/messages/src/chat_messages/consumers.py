"""The JetStream command consumer: fetch a batch, commit it, publish, then ack.

A crash anywhere before the ack means redelivery; the store's idempotency key
turns a redelivered command into the event stored the first time, which is
published again (the stream de-duplicates it, gateways drop seqs they have seen).
"""

from __future__ import annotations

import asyncio
import logging
import time

import nats.errors
import orjson
from chat_proto import streams, subjects
from chat_proto.commands import RESULT_SCHEMA, SendCommand
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from chat_messages.ports import Publisher
from chat_messages.writer import BatchResult, Outcome, Writer

log = logging.getLogger("chat.messages.consumer")
RESULT_HEADERS = {"Chat-Schema": RESULT_SCHEMA}

COMMANDS = Counter("chat_messages_commands_total", "Send commands handled", ["outcome"])
BATCH = Histogram(
    "chat_messages_batch_size", "Commands per write transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500),
)
BATCH_SECONDS = Histogram(
    "chat_messages_batch_seconds", "Time from fetch to ack of one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class CommandConsumer:
    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        writer: Writer,
        publisher: Publisher,
        *,
        batch_size: int = 256,
        fetch_timeout_s: float = 1.0,
        ack_wait_s: float = 30.0,
        batch_window_s: float = 0.002,
    ) -> None:
        self.nc, self.js, self.writer, self.pub = nc, js, writer, publisher
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout_s
        self.ack_wait = ack_wait_s
        self.batch_window = batch_window_s
        self._task: asyncio.Task[None] | None = None
        self._psub: JetStreamContext.PullSubscription | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        # Declared (or updated to this config) explicitly: pull_subscribe alone would keep an
        # existing durable's old settings, e.g. a longer ack_wait.
        await self.js.add_consumer(subjects.CMD_STREAM, streams.messages_consumer(self.ack_wait))
        psub = await self.js.pull_subscribe(
            subjects.CMD_SUBJECTS,
            durable=subjects.MESSAGES_CONSUMER,
            stream=subjects.CMD_STREAM,
            config=streams.messages_consumer(self.ack_wait),
        )
        self._psub = psub
        self._task = asyncio.create_task(self._loop(psub), name="command-consumer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout=self.fetch_timeout + 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self._psub is not None:
            try:
                await self._psub.unsubscribe()
            except Exception:
                pass

    async def _loop(self, psub: JetStreamContext.PullSubscription) -> None:
        """Three stages, each in order: fetching, committing, publishing+acking.

        The fetcher keeps pulling while a batch commits, so when a commit ends everything
        that arrived meanwhile is committed next as one batch: the batch grows with the
        load and a command waits at most about one commit.
        """
        inbox: asyncio.Queue[Msg] = asyncio.Queue()
        fetcher = asyncio.create_task(self._fetcher(psub, inbox))
        tail: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    first = await asyncio.wait_for(inbox.get(), self.fetch_timeout)
                except TimeoutError:
                    continue
                msgs = [first]
                while len(msgs) < self.batch_size and not inbox.empty():
                    msgs.append(inbox.get_nowait())
                started = time.perf_counter()
                try:
                    prepared = await self._commit(msgs)
                except Exception:
                    log.exception("batch failed")
                    continue
                if prepared is not None:
                    # Publishing and acking batch N overlaps committing batch N+1; the chain
                    # keeps publication in commit order.
                    tail = asyncio.create_task(self._finish(tail, started, *prepared))
        finally:
            fetcher.cancel()
            if tail is not None:
                await asyncio.wait([tail], timeout=10)

    async def _fetcher(self, psub: JetStreamContext.PullSubscription, inbox: asyncio.Queue[Msg]) -> None:
        # Bounded by the consumer's max_ack_pending: JetStream hands out no more than that
        # many unacknowledged commands.
        while not self._stopping.is_set():
            try:
                for m in await self._fetch(psub):
                    inbox.put_nowait(m)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    break
                log.warning("fetch failed", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)

    async def _fetch(self, psub: JetStreamContext.PullSubscription) -> list[Msg]:
        """Wait for the first command, then take what else is there within a short window.

        nats-py's ``fetch(n, timeout)`` lingers until it has ``n`` messages or the timeout
        passes, which at low rates would add up to ``fetch_timeout`` of latency.
        """
        msgs = await psub.fetch(1, timeout=self.fetch_timeout)
        if self.batch_size > 1:
            try:
                msgs += await psub.fetch(self.batch_size - 1, timeout=self.batch_window)
            except (nats.errors.TimeoutError, TimeoutError):
                pass
        return msgs

    async def handle(self, msgs: list[Msg]) -> None:
        """Commit, publish and ack one batch (the loop pipelines these two halves)."""
        prepared = await self._commit(msgs)
        if prepared is not None:
            await self._finish(None, time.perf_counter(), *prepared)

    async def _commit(self, msgs: list[Msg]) -> tuple[list[Msg], list[SendCommand], BatchResult] | None:
        cmds: list[SendCommand] = []
        live: list[Msg] = []
        for m in msgs:
            try:
                cmds.append(SendCommand.model_validate_json(m.data))
                live.append(m)
            except ValidationError:
                log.error("poison command terminated", extra={"subject": m.subject})
                COMMANDS.labels("poison").inc()
                await m.term()
        if not cmds:
            return None
        BATCH.observe(len(cmds))
        try:
            replays = any(m.metadata.num_delivered > 1 for m in live)
            return live, cmds, await self.writer.write_batch(cmds, maybe_replays=replays)
        except Exception as exc:
            await self._retry_later(live, exc)
            return None

    async def _finish(
        self,
        prev: asyncio.Task[None] | None,
        started: float,
        live: list[Msg],
        cmds: list[SendCommand],
        result: BatchResult,
    ) -> None:
        if prev is not None:
            await asyncio.wait([prev])
        try:
            await self.pub.publish_events(result.new_events)
            again = [
                o.event for m, o in zip(live, result.outcomes, strict=True)
                if o.event is not None and not o.created and m.metadata.num_delivered > 1
            ]
            await self.pub.publish_events(again)
        except Exception as exc:
            await self._retry_later(live, exc)
            return
        await self._answer(cmds, result.outcomes)
        for m, o in zip(live, result.outcomes, strict=True):
            try:
                if o.error is not None:
                    await m.term()
                    COMMANDS.labels(str(o.error.code)).inc()
                else:
                    await m.ack()
                    COMMANDS.labels("stored" if o.created else "replayed").inc()
            except Exception as exc:
                log.warning("ack failed", extra={"error": repr(exc)})
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _retry_later(self, live: list[Msg], exc: Exception) -> None:
        log.warning("batch not committed or not published; redelivering",
                    extra={"error": repr(exc), "n": len(live)})
        for m in live:
            await _nak(m)
        COMMANDS.labels("retried").inc(len(live))

    async def _answer(self, cmds: list[SendCommand], outcomes: list[Outcome]) -> None:
        """One CommandResults message per gateway per batch (not one per command)."""
        by_gateway: dict[str, list[dict[str, object]]] = {}
        for cmd, o in zip(cmds, outcomes, strict=True):
            if not cmd.reply_subject:
                continue
            # The fields of chat_proto.commands.CommandResult (v1), encoded without a model
            # round trip: this runs once per command on the hot path.
            res: dict[str, object] = {
                "v": 1, "conv": cmd.conv, "sender": cmd.sender, "client_msg_id": cmd.client_msg_id,
                "ok": o.error is None, "created": o.created,
            }
            if o.event is not None:
                res["event"] = o.event.to_wire()
            if o.error is not None:
                res["error"] = o.error.to_dict()
            by_gateway.setdefault(cmd.reply_subject, []).append(res)
        for subject, results in by_gateway.items():
            try:
                await self.nc.publish(subject, orjson.dumps({"v": 1, "results": results}), headers=RESULT_HEADERS)
            except Exception:  # the gateway times out and the client resends
                log.warning("results not published", extra={"subject": subject})


async def _nak(m: Msg) -> None:
    try:
        await m.nak(delay=streams.backoff_s(m.metadata.num_delivered))
    except Exception:
        pass
