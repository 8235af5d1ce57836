"""The JetStream command consumer: take a batch, commit it, answer, publish, then ack.

A crash anywhere before the ack means redelivery; the store's idempotency key
turns a redelivered command into the event stored the first time, which is
published again (the stream de-duplicates it, gateways drop seqs they have seen) —
whatever JetStream's delivery count says (after a NATS crash the consumer's delivery
state comes back older than it was: commands delivered before come again counted as
delivered once; a gateway's re-publication under a one-time id is counted once too).
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from chat_bus import streams
from chat_bus.pull import PullStream
from chat_common.db import database_unavailable
from chat_proto import subjects
from chat_proto.commands import RESULT_SCHEMA, SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Event
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from chat_messages.ports import Publisher
from chat_messages.writer import BatchResult, Outcome, Writer

log = logging.getLogger("chat.messages.consumer")
RESULT_HEADERS = {"Chat-Schema": RESULT_SCHEMA}
UNSTORABLE = "this message cannot be stored"

COMMANDS = Counter("chat_messages_commands_total", "Send commands handled", ["outcome"])
ISOLATED = Counter(
    "chat_messages_commands_isolated_total",
    "Commands refused because writing them failed on their own (a batch that raised was split to find them)",
)
BATCH = Histogram(
    "chat_messages_batch_size",
    "Commands per write transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500),
)
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
BATCH_SECONDS = Histogram(
    "chat_messages_batch_seconds",
    "Time from taking a batch to acking it",
    buckets=_STAGE_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "chat_messages_commit_seconds",
    "Time of one batch's write transaction, commit included",
    buckets=_STAGE_BUCKETS,
)
PUBLISH_SECONDS = Histogram(
    "chat_messages_publish_seconds",
    "Time from a batch's commit until JetStream stored its events (waiting for the batch before included)",
    buckets=_STAGE_BUCKETS,
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
        ack_wait_s: float = 30.0,
        pull_expires_s: float = 5.0,
    ) -> None:
        self.nc, self.js, self.writer, self.pub = nc, js, writer, publisher
        self.batch_size = batch_size
        self.ack_wait = ack_wait_s
        self.pull_expires = pull_expires_s
        self._task: asyncio.Task[None] | None = None
        self._pull: PullStream | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        # Declared (or updated to this config) explicitly: a durable keeps its old settings
        # otherwise, e.g. a longer ack_wait.
        await self.js.add_consumer(subjects.CMD_STREAM, streams.messages_consumer(self.ack_wait))
        # Bounded by the consumer's max_ack_pending: JetStream hands out no more than that
        # many unacknowledged commands, so the inbox cannot grow past it.
        inbox: asyncio.Queue[Msg] = asyncio.Queue()
        self._pull = PullStream(
            self.nc,
            subjects.CMD_STREAM,
            subjects.MESSAGES_CONSUMER,
            inbox.put_nowait,
            batch=self.batch_size,
            expires_s=self.pull_expires,
        )
        await self._pull.start()
        self._task = asyncio.create_task(self._loop(inbox), name="command-consumer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._pull is not None:
            await self._pull.stop()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout=6)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    async def _loop(self, inbox: asyncio.Queue[Msg]) -> None:
        """Two stages, each in order: committing (and answering the senders), then
        publishing+acking.

        Commands keep streaming in while a batch commits, so when a commit ends everything
        that arrived meanwhile is committed next as one batch: the batch grows with the
        load and a command waits at most about one commit.
        """
        tail: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    first = await asyncio.wait_for(inbox.get(), 1.0)
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
            if tail is not None:
                await asyncio.wait([tail], timeout=5)

    async def handle(self, msgs: list[Msg]) -> None:
        """Commit, publish and ack one batch (the loop pipelines these two halves)."""
        prepared = await self._commit(msgs)
        if prepared is not None:
            await self._finish(None, time.perf_counter(), *prepared)

    async def _commit(self, msgs: list[Msg]) -> tuple[list[Msg], BatchResult] | None:
        """Validate, commit and answer one batch; what ``_finish`` publishes and acks (None:
        nothing committed, every command already settled or left to redelivery)."""
        cmds: list[SendCommand] = []
        live: list[Msg] = []
        for m in msgs:
            try:
                cmds.append(SendCommand.model_validate_json(m.data))
                live.append(m)
            except ValidationError as exc:
                await self._refuse_malformed(m, exc)
        if not cmds:
            return None
        BATCH.observe(len(cmds))
        replays = any(streams.times_delivered(m) > 1 for m in live)
        t0 = time.perf_counter()
        try:
            result = await self.writer.write_batch(cmds, maybe_replays=replays)
        except Exception as exc:
            if transient(exc):
                await self._retry_later(live, exc)
                return None
            log.warning("batch failed; isolating the command that fails", extra={"error": repr(exc), "n": len(cmds)})
            live, cmds, result = await self._isolate(live, cmds, replays)
            if not live:
                return None
        COMMIT_SECONDS.observe(time.perf_counter() - t0)
        # The senders are answered as soon as their messages are committed (durably
        # stored: what an ack promises), not after the events are in CHAT_EVENTS; the
        # protocol lets a sender's ack and event come in either order. The commands are
        # acked only after publication (_finish), so a crash before it redelivers them and
        # the stored events are published then: nothing acked is ever missing from the stream.
        await self._answer(cmds, result.outcomes)
        return live, result

    async def _isolate(
        self, live: list[Msg], cmds: list[SendCommand], replays: bool
    ) -> tuple[list[Msg], list[SendCommand], BatchResult]:
        """A batch that raised (not a transient error): write it again in halves, down to
        single commands, so one bad command cannot hold back the others. A command that
        fails on its own gets an error result (its sender is answered, the command is
        terminated); the rest commit. Halves are written in order, so each conversation's
        seqs stay in command order. Commands hit by a transient error meanwhile are
        redelivered later."""
        if len(cmds) > 1:
            mid = len(cmds) // 2
            a = await self._write_part(live[:mid], cmds[:mid], replays)
            b = await self._write_part(live[mid:], cmds[mid:], replays)
            return (
                a[0] + b[0],
                a[1] + b[1],
                BatchResult(a[2].outcomes + b[2].outcomes, a[2].new_events + b[2].new_events),
            )
        log.error("command cannot be stored; refused", extra={"conv": cmds[0].conv, "sender": cmds[0].sender})
        ISOLATED.inc()
        return live, cmds, BatchResult([Outcome(error=ChatError(ErrorCode.INVALID, UNSTORABLE))])

    async def _write_part(
        self, live: list[Msg], cmds: list[SendCommand], replays: bool
    ) -> tuple[list[Msg], list[SendCommand], BatchResult]:
        try:
            return live, cmds, await self.writer.write_batch(cmds, maybe_replays=replays)
        except Exception as exc:
            if transient(exc):
                await self._retry_later(live, exc)
                return [], [], BatchResult([])
            return await self._isolate(live, cmds, replays)

    async def _refuse_malformed(self, m: Msg, exc: ValidationError) -> None:
        """A command that is not a valid SendCommand can never succeed: terminated, and its
        sender answered with ``invalid`` when the command says who and where that is."""
        log.error("malformed command terminated", extra={"subject": m.subject, "error": str(exc)[:200]})
        COMMANDS.labels("poison").inc()
        await m.term()
        try:
            raw = orjson.loads(m.data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(raw, dict) or not isinstance(raw.get("reply_subject"), str):
            return
        fields = {k: raw.get(k) for k in ("conv", "sender", "client_msg_id")}
        if not all(isinstance(v, str) for v in fields.values()):
            return
        err = ChatError(ErrorCode.INVALID, f"invalid command: {_describe(exc)}")
        res = {"v": 1, **fields, "ok": False, "created": False, "error": err.to_dict()}
        await self._publish_results(raw["reply_subject"], [res])

    async def _finish(
        self,
        prev: asyncio.Task[None] | None,
        started: float,
        live: list[Msg],
        result: BatchResult,
    ) -> None:
        committed = time.perf_counter()
        if prev is not None:
            await asyncio.wait([prev])
        try:
            await self.pub.publish_events(_replayed(result) + result.new_events)
        except Exception as exc:
            await self._retry_later(live, exc)
            return
        PUBLISH_SECONDS.observe(time.perf_counter() - committed)
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
        log.warning("batch not committed or not published; redelivering", extra={"error": repr(exc), "n": len(live)})
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
                "v": 1,
                "conv": cmd.conv,
                "sender": cmd.sender,
                "client_msg_id": cmd.client_msg_id,
                "ok": o.error is None,
                "created": o.created,
            }
            if o.event is not None:
                res["event"] = o.event.to_wire()
            if o.error is not None:
                res["error"] = o.error.to_dict()
            by_gateway.setdefault(cmd.reply_subject, []).append(res)
        for subject, results in by_gateway.items():
            await self._publish_results(subject, results)

    async def _publish_results(self, subject: str, results: list[dict[str, object]]) -> None:
        try:
            await self.nc.publish(subject, orjson.dumps({"v": 1, "results": results}), headers=RESULT_HEADERS)
        except Exception:  # the gateway times out and the client resends
            log.warning("results not published", extra={"subject": subject})


def _replayed(result: BatchResult) -> list[Event]:
    """The events the batch found already stored (replays), each once, in seq order: they
    are published again, before the batch's new events (older seqs first), so an event whose
    first publication a crash interrupted reaches the stream; JetStream drops the ones it
    already holds (``Nats-Msg-Id``). Decided by the store, not by JetStream's delivery count: after a NATS
    crash a command delivered before comes again counted as delivered once (the consumer's
    delivery state is written behind), its event maybe never published."""
    new = {(e.conv, e.seq) for e in result.new_events}
    seen: dict[tuple[str, int], Event] = {}
    for o in result.outcomes:
        if o.event is not None and not o.created and (o.event.conv, o.event.seq) not in new:
            seen.setdefault((o.event.conv, o.event.seq), o.event)
    return [seen[k] for k in sorted(seen, key=lambda k: k[1])]


def transient(exc: BaseException) -> bool:
    """Errors that say nothing about the commands (the database or the network is away,
    busy or restarting): the batch is redelivered later. Anything else is taken to come
    from the batch's content and is isolated to the command that causes it."""
    return database_unavailable(exc) or isinstance(exc, TimeoutError | OSError)


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'command'}: {e['msg']}" for e in exc.errors()[:3])


async def _nak(m: Msg) -> None:
    try:
        await m.nak(delay=streams.backoff_s(streams.times_delivered(m)))
    except Exception:
        pass
