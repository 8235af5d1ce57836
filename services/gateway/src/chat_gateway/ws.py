"""The WebSocket endpoint: authenticate, then handle frames in order and answer in order.

Frames are handled concurrently (a send waits for the store) but their answers are
written in the order the frames arrived: each frame gets a slot in ``answers``, and
one task writes the slots out in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from chat_bus.rpc import RpcClient
from chat_proto import frames as F
from chat_proto import ops
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.logctx import bind
from chat_proto.messages_api import SyncPosition, SyncQuery
from chat_proto.replies import SyncReply
from prometheus_client import Counter
from starlette.websockets import WebSocket

from chat_gateway import sync
from chat_gateway.admission import ConnectionSends
from chat_gateway.connection import CONNECTIONS, Connection
from chat_gateway.frame_guard import FrameGuard
from chat_gateway.hub import Hub
from chat_gateway.limits import CONNECTIONS_KIND, RATE_LIMITED, Limits
from chat_gateway.receipts import ReceiptCoalescer
from chat_gateway.sends import Sender
from chat_gateway.settings import GatewaySettings
from chat_gateway.sync_budget import SyncBudget, SyncTicket
from chat_gateway.tokens import Principal, TokenVerifier
from chat_gateway.typing_relay import TypingRelay

log = logging.getLogger("chat.gateway.ws")
FRAMES_IN = Counter("chat_gateway_frames_in_total", "Frames received from clients", ["type"])

# An answer: frames to write, then an optional action run right after they are queued.
# Frames may be given as a function, evaluated when they are queued (sync replays filter
# against what the connection has received by then).
Answer = tuple[list[str] | Callable[[], list[str]], Callable[[], None] | None]


class Session:
    def __init__(
        self,
        ws: WebSocket,
        s: GatewaySettings,
        hub: Hub,
        verifier: TokenVerifier,
        sender: Sender,
        rpc: RpcClient,
        receipts: ReceiptCoalescer | None = None,
        limits: Limits | None = None,
        typing: TypingRelay | None = None,
    ) -> None:
        self.ws, self.s, self.hub, self.verifier, self.sender, self.rpc = ws, s, hub, verifier, sender, rpc
        self.receipts = receipts
        self.typing = typing
        self.guard = FrameGuard.from_settings(limits, s) if limits is not None else None
        self.draining = False
        self._sync_budget = SyncBudget(s.sync_max_bytes)  # replayed events held, all syncs
        self._sync_lock = asyncio.Lock()
        self._sends = ConnectionSends(s.connection_max_inflight_sends)
        self.conn = Connection(ws, s.queue_max_frames, s.queue_max_bytes)
        self.principal: Principal | None = None
        self.answers: asyncio.Queue[asyncio.Future[Answer]] = asyncio.Queue(s.max_inflight_frames)
        self._expiry: asyncio.Task[None] | None = None

    async def run(self) -> None:
        await self.ws.accept()
        writer = asyncio.create_task(self.conn.writer())
        try:
            if await self._authenticate():
                await self._serve()
        finally:
            if self._expiry:
                self._expiry.cancel()
            if self.principal is not None:
                CONNECTIONS.dec()
                await self.hub.detach(self.conn)
            self.conn.close_after_queue(1000)
            try:
                await asyncio.wait_for(writer, timeout=2)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()

    # --- authentication ------------------------------------------------------------------
    async def _authenticate(self) -> bool:
        deadline = time.monotonic() + self.s.auth_timeout_s
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            await self._refuse("no auth frame in time")
            return False
        if msg["type"] != "websocket.receive" or msg.get("text") is None:
            return self._bad_first(msg)
        try:
            frame = F.parse_client_frame(msg["text"])
        except (F.FrameRejected, F.FrameInvalid):
            await self._refuse("first frame must be auth")
            return False
        if not isinstance(frame, F.AuthFrame):
            await self._refuse("first frame must be auth")
            return False
        try:
            self.principal = await self.verifier.verify(frame.token)
        except ChatError as err:
            await self._refuse(err.message)
            return False
        if len(self.hub.users.get(self.principal.user_id, ())) >= self.s.max_connections_per_user:
            self.principal = None
            await self._refuse_over_cap()
            return False
        self.conn.user = self.principal.user_id
        self.conn.issued_at = self.principal.iat
        bind(user=self.conn.user, conn=self.conn.id)  # on this connection's log lines
        CONNECTIONS.inc()
        try:
            await self.hub.attach(self.conn)
        except ChatError:
            self.conn.close_now(F.CLOSE_SERVICE_RESTART, "try again")
            return False
        if self.verifier.revoked(self.principal):  # revoked while attaching
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "account deactivated")
            return False
        self._watch_expiry()
        await self.conn.push_reply(
            F.encode(
                _with_ref(
                    {
                        "type": "auth_ok",
                        "user_id": self.conn.user,
                        "session_id": self.conn.id,
                        "heartbeat_s": self.s.heartbeat_s,
                    },
                    frame.ref,
                )
            )
        )
        return True

    def _bad_first(self, msg: MutableMapping[str, Any]) -> bool:
        if msg["type"] == "websocket.receive":
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "first frame must be auth")
        return False

    async def _refuse_over_cap(self) -> None:
        RATE_LIMITED.labels(CONNECTIONS_KIND, "ws").inc()
        err = ChatError(ErrorCode.RATE_LIMITED, "too many connections of this user on this gateway")
        await self.conn.push_reply(F.error_frame(err))
        self.conn.close_after_queue(F.CLOSE_POLICY, "too many connections")

    async def _refuse(self, why: str) -> None:
        await self.conn.push_reply(F.error_frame(ChatError(ErrorCode.UNAUTHORIZED, why)))
        self.conn.close_after_queue(F.CLOSE_UNAUTHORIZED, "unauthorized")

    def _watch_expiry(self) -> None:
        if self._expiry:
            self._expiry.cancel()
        assert self.principal is not None
        exp = self.principal.exp

        async def expire() -> None:
            await asyncio.sleep(max(0.0, exp - time.time()))
            self.conn.close_after_queue(F.CLOSE_TOKEN_EXPIRED, "token expired")

        self._expiry = asyncio.create_task(expire())

    # --- frames --------------------------------------------------------------------------
    async def _serve(self) -> None:
        answerer = asyncio.create_task(self._write_answers())
        try:
            while not self.conn.closed.is_set():
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                text = msg.get("text")
                if text is None:
                    self.conn.close_now(F.CLOSE_POLICY, "binary frames are not accepted")
                    break
                try:
                    frame = F.parse_client_frame(text)
                except F.FrameRejected as exc:
                    FRAMES_IN.labels("rejected").inc()
                    await self._answer_now([F.error_frame(ChatError(ErrorCode.INVALID, str(exc)))])
                    self._close_after_answers(F.CLOSE_POLICY, str(exc))
                    break
                except F.FrameInvalid as err:
                    FRAMES_IN.labels("invalid").inc()
                    await self._answer_now([F.error_frame(err, err.ref)])
                    continue
                FRAMES_IN.labels(frame.type).inc()
                if self.draining:
                    continue  # closing with 1012: frames read from now on are not handled
                await self.answers.put(self._admit(frame))
                if self._final_close is not None:
                    break  # rate-limit abuse: what was read is answered, then close 4008
        finally:
            await self.answers.put(_done(None))
            try:
                await asyncio.wait_for(answerer, timeout=self.s.send_timeout_s + 1)
            except (TimeoutError, asyncio.CancelledError):
                answerer.cancel()

    def _admit(self, frame: Any) -> asyncio.Future[Answer]:
        """Handle ``frame``, or answer ``rate_limited`` at once (frame_guard.py)."""
        refusal = self.guard.admit(self.conn.user, frame) if self.guard is not None else None
        if refusal is None:
            return asyncio.ensure_future(self._handle(frame))
        if refusal.abusive:
            self._close_after_answers(F.CLOSE_POLICY, "rate limit abuse")
        return _done(([refusal.frame], None))

    # --- drain (drain.py) ----------------------------------------------------------------
    @property
    def closed(self) -> asyncio.Event:
        return self.conn.closed

    def drain(self) -> None:
        """Close with 1012 once the answers to the frames already read are written; frames
        read after this are not handled."""
        self.draining = True
        if self.principal is None:
            self.conn.close_now(F.CLOSE_SERVICE_RESTART, "service restart")
            return
        last: Answer = ([], lambda: self.conn.close_after_queue(F.CLOSE_SERVICE_RESTART, "service restart"))
        try:
            self.answers.put_nowait(_done(last))
        except asyncio.QueueFull:
            self._drain_put = asyncio.ensure_future(self.answers.put(_done(last)))

    _drain_put: asyncio.Future[None] | None = None

    async def _answer_now(self, out: list[str]) -> None:
        await self.answers.put(_done((out, None)))

    def _close_after_answers(self, code: int, reason: str) -> None:
        self._final_close = (code, reason)

    _final_close: tuple[int, str] | None = None

    async def _write_answers(self) -> None:
        while True:
            fut = await self.answers.get()
            try:
                answer = await fut
            except Exception:
                log.exception("frame handler failed", extra={"conn": self.conn.id})
                answer = ([F.error_frame(ChatError(ErrorCode.INTERNAL))], None)
            if answer is None:
                if self._final_close:
                    self.conn.close_after_queue(*self._final_close)
                return
            frames, after = answer
            out = frames() if callable(frames) else frames
            for text in out:
                await self.conn.push_reply(text)
            if after is not None:
                after()

    async def _handle(self, frame: Any) -> Answer:
        handler = _HANDLERS[frame.type]
        try:
            return await handler(self, frame)
        except ChatError as err:
            return [F.error_frame(err, frame.ref)], None

    async def _on_auth(self, frame: F.AuthFrame) -> Answer:
        try:
            p = await self.verifier.verify(frame.token)
        except ChatError:
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "unauthorized")
            return [], None
        if p.user_id != self.conn.user:
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "token of another user")
            return [], None
        self.principal = p
        self.conn.issued_at = p.iat
        self._watch_expiry()
        return [
            F.encode(
                _with_ref(
                    {
                        "type": "auth_ok",
                        "user_id": p.user_id,
                        "session_id": self.conn.id,
                        "heartbeat_s": self.s.heartbeat_s,
                    },
                    frame.ref,
                )
            )
        ], None

    async def _on_send(self, frame: F.SendFrame) -> Answer:
        try:
            res = await self.sender.send(
                self.conn.user,
                frame.conv,
                frame.client_msg_id,
                frame.body,
                frame.attachments,
                frame.reply_to,
                connection=self._sends,
            )
        except ChatError as err:  # refused (body limits, membership, unavailable)
            return [F.error_frame(err, frame.ref, conv=frame.conv, client_msg_id=frame.client_msg_id)], None
        return [
            F.encode(
                _with_ref(
                    {
                        "type": "ack",
                        "conv": frame.conv,
                        "client_msg_id": frame.client_msg_id,
                        "seq": res.event["seq"],
                        "ts": res.event["ts"],
                    },
                    frame.ref,
                )
            )
        ], None

    async def _on_sync(self, frame: F.SyncFrame) -> Answer:
        # Hold live events of every listed conversation now, in frame order (also those this
        # connection is about to start receiving, e.g. just joined over REST).
        for conv in frame.positions:
            self.conn.begin_replay(conv)
        ticket = SyncTicket(self._sync_budget)
        try:
            async with self._sync_lock:  # one sync at a time per connection (sync.py)
                replay = await sync.fetch(self._sync_call, frame.positions, ticket, self.s.sync_max_events)
        except BaseException:  # refused, bus errors, cancellation: never stay held
            self._release(frame, None, ticket)
            raise
        done = F.encode(
            _with_ref({"type": "sync_done", "truncated": replay.truncated, "not_found": replay.not_found}, frame.ref)
        )

        def frames() -> list[str]:
            out = [
                F.encode({"type": "event", "event": e})
                for conv, evs in replay.events.items()
                for e in evs
                if self.conn.replayable(conv, e["seq"])
            ]
            out.append(done)
            return out

        return frames, lambda: self._release(frame, replay, ticket)

    async def _sync_call(self, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> SyncReply:
        q = SyncQuery(
            positions=[SyncPosition(conv=c, after=a) for c, a in positions], per_conv=per_conv, max_bytes=max_bytes
        )
        return await self.rpc.request(ops.messages.SYNC, q, user=self.conn.user)

    def _release(self, frame: F.SyncFrame, replay: sync.Replay | None, ticket: SyncTicket) -> None:
        ticket.release()
        for conv in frame.positions:
            # Nothing replayed (0): a position the client claims beyond the log's end must
            # not mute the conversation's next live events here.
            self.conn.end_replay(conv, replay.replayed_to(conv) if replay is not None else 0)

    async def _on_ping(self, frame: F.PingFrame) -> Answer:
        return [F.encode(_with_ref({"type": "pong"}, frame.ref))], None

    async def _on_delivered(self, frame: F.DeliveredFrame) -> Answer:
        # Answered with nothing; coalesced and applied by the messages service (receipts.py).
        if self.receipts is not None:
            self.receipts.report(self.conn.user, frame.conv, delivered=frame.seq)
        return [], None

    async def _on_read(self, frame: F.ReadFrame) -> Answer:
        if self.receipts is not None:
            self.receipts.report(self.conn.user, frame.conv, read=frame.seq)
        return [], None

    async def _on_typing(self, frame: F.TypingFrame) -> Answer:
        # Relayed or dropped (rate): answered with nothing; refusals with an error (typing_relay.py).
        if self.typing is not None:
            try:
                await self.typing.typing(self.conn, frame.conv)
            except ChatError as err:
                return [F.error_frame(err, frame.ref, conv=frame.conv)], None
        return [], None


_HANDLERS: dict[str, Callable[[Session, Any], Awaitable[Answer]]] = {
    "auth": Session._on_auth,
    "send": Session._on_send,
    "sync": Session._on_sync,
    "ping": Session._on_ping,
    "delivered": Session._on_delivered,
    "read": Session._on_read,
    "typing": Session._on_typing,
}


def _with_ref(d: dict[str, Any], ref: str | None) -> dict[str, Any]:
    if ref is not None:
        d["ref"] = ref
    return d


def _done(value: Any) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut
