"""The WebSocket endpoint: authenticate, then read frames and dispatch them; answers are
written in frame order (``answers.py``). The flows behind the frames live elsewhere: sends
``sends.py``, sync and replay ``sync.py``, fanout ``hub.py``, receipts ``receipts.py``,
typing ``typing_relay.py``, rate limits ``frame_guard.py``, the outbound queue
``connection.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from chat_proto import frames as F
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.logctx import bind
from prometheus_client import Counter
from starlette.websockets import WebSocket

from chat_gateway.admission import ConnectionSends
from chat_gateway.answers import NOTHING, Answer, Answers, done
from chat_gateway.connection import CONNECTIONS, Connection
from chat_gateway.core import Core
from chat_gateway.frame_guard import FrameGuard
from chat_gateway.light import Flag
from chat_gateway.limits import CONNECTIONS_KIND, RATE_LIMITED
from chat_gateway.sync import ConnectionSync
from chat_gateway.tokens import Principal
from chat_gateway.ws_protocol import frame_sink

FRAMES_IN = Counter("chat_gateway_frames_in_total", "Frames received from clients", ["type"])


class Session:
    def __init__(self, ws: WebSocket, core: Core) -> None:
        self.ws, self.core, self.s = ws, core, core.settings
        s = core.settings
        self.guard = FrameGuard.from_settings(core.limits, s) if core.limits is not None else None
        self.draining = False
        self.conn = Connection(ws, s.queue_max_frames, s.queue_max_bytes, frame_sink(ws.scope))
        sign = core.signer.event if core.signer is not None else None
        self.sync = ConnectionSync(self.conn, core.messages, s.sync_max_bytes, s.sync_max_events, sign)
        self._sends = ConnectionSends(s.connection_max_inflight_sends)
        self.principal: Principal | None = None
        self.answers = Answers(s.max_inflight_frames, self.conn.push_reply, self.conn.id)

    @property
    def closed(self) -> Flag:
        return self.conn.closed

    async def run(self) -> None:
        await self.ws.accept()
        writer = asyncio.create_task(self.conn.writer())
        try:
            if await self._authenticate():
                await self._serve()
        finally:
            if self.principal is not None:
                CONNECTIONS.dec()
                await self.core.hub.detach(self.conn)
            self.conn.close_after_queue(1000)
            try:
                await asyncio.wait_for(writer, timeout=2)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()

    # --- authentication ------------------------------------------------------------------
    async def _authenticate(self) -> bool:
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout=self.s.auth_timeout_s)
        except TimeoutError:
            return await self._refuse("no auth frame in time")
        if msg["type"] != "websocket.receive" or msg.get("text") is None:
            if msg["type"] == "websocket.receive":  # binary
                self.conn.close_now(F.CLOSE_UNAUTHORIZED, "first frame must be auth")
            return False
        try:
            frame = F.parse_client_frame(msg["text"])
        except (F.FrameRejected, F.FrameInvalid):
            frame = None
        if not isinstance(frame, F.AuthFrame):
            return await self._refuse("first frame must be auth")
        try:
            self.principal = await self.core.verifier.verify(frame.token)
        except ChatError as err:
            return await self._refuse(err.message)
        if len(self.core.hub.users.get(self.principal.user_id, ())) >= self.s.max_connections_per_user:
            self.principal = None
            RATE_LIMITED.labels(CONNECTIONS_KIND, "ws").inc()
            over = ChatError(ErrorCode.RATE_LIMITED, "too many connections of this user on this gateway")
            await self.conn.push_reply(F.error_frame(over))
            self.conn.close_after_queue(F.CLOSE_POLICY, "too many connections")
            return False
        self.conn.user = self.principal.user_id
        self.conn.issued_at = self.principal.iat
        bind(user=self.conn.user, conn=self.conn.id)  # on this connection's log lines
        CONNECTIONS.inc()
        try:
            await self.core.hub.attach(self.conn)
        except ChatError:
            self.conn.close_now(F.CLOSE_SERVICE_RESTART, "try again")
            return False
        if self.core.verifier.revoked(self.principal):  # revoked while attaching
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "account deactivated")
            return False
        self.conn.expire_at(self.principal.exp)
        await self.conn.push_reply(self._auth_ok(frame.ref))
        return True

    def _auth_ok(self, ref: str | None) -> str:
        return F.AuthOk(user_id=self.conn.user, session_id=self.conn.id, heartbeat_s=self.s.heartbeat_s, ref=ref).text()

    async def _refuse(self, why: str) -> bool:
        await self.conn.push_reply(F.error_frame(ChatError(ErrorCode.UNAUTHORIZED, why)))
        self.conn.close_after_queue(F.CLOSE_UNAUTHORIZED, "unauthorized")
        return False

    # --- frames --------------------------------------------------------------------------
    async def _serve(self) -> None:
        writer = asyncio.create_task(self.answers.write_all(self.conn.close_after_queue))
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
                    await self.answers.put_now([F.error_frame(ChatError(ErrorCode.INVALID, str(exc)))])
                    self.answers.close_after(F.CLOSE_POLICY, str(exc))
                    break
                except F.FrameInvalid as err:
                    FRAMES_IN.labels("invalid").inc()
                    await self.answers.put_now([F.error_frame(err, err.ref)])
                    continue
                FRAMES_IN.labels(frame.type).inc()
                if self.draining:
                    continue  # closing with 1012: frames read from now on are not handled
                await self.answers.put(self._admit(frame))
                if self.answers.final_close is not None:
                    break  # rate-limit abuse: what was read is answered, then close 4008
        finally:
            await self.answers.end()
            try:
                await asyncio.wait_for(writer, timeout=self.s.send_timeout_s + 1)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()

    def _admit(self, frame: Any) -> asyncio.Future[Answer]:
        """Handle ``frame``, or answer ``rate_limited`` at once (frame_guard.py)."""
        refusal = self.guard.admit(self.conn.user, frame) if self.guard is not None else None
        if refusal is None:
            if frame.type == "send":  # past capacity: refused here, at the cost of a frame
                err = self.core.sender.refuse_now(self.conn.user, self._sends)
                if err is not None:
                    return done(([self._send_error(err, frame)], None))
            return asyncio.ensure_future(self._handle(frame))
        if refusal.abusive:
            self.answers.close_after(F.CLOSE_POLICY, "rate limit abuse")
        return done(([refusal.frame], None))

    def drain(self) -> None:
        """Close with 1012 once the answers to the frames already read are written; frames
        read after this are not handled (drain.py)."""
        self.draining = True
        if self.principal is None:
            self.conn.close_now(F.CLOSE_SERVICE_RESTART, "service restart")
            return
        self.answers.put_nowait_or_later(
            ([], lambda: self.conn.close_after_queue(F.CLOSE_SERVICE_RESTART, "service restart"))
        )

    async def _handle(self, frame: Any) -> Answer:
        try:
            return await _HANDLERS[frame.type](self, frame)
        except ChatError as err:
            return [F.error_frame(err, frame.ref)], None

    async def _on_auth(self, frame: F.AuthFrame) -> Answer:
        try:
            p = await self.core.verifier.verify(frame.token)
        except ChatError:
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "unauthorized")
            return NOTHING
        if p.user_id != self.conn.user:
            self.conn.close_now(F.CLOSE_UNAUTHORIZED, "token of another user")
            return NOTHING
        self.principal = p
        self.conn.issued_at = p.iat
        self.conn.expire_at(p.exp)
        return [self._auth_ok(frame.ref)], None

    async def _on_send(self, frame: F.SendFrame) -> Answer:
        try:
            res = await self.core.sender.send(
                self.conn.user,
                frame.conv,
                frame.client_msg_id,
                frame.body,
                frame.attachments,
                frame.reply_to,
                connection=self._sends,
            )
        except ChatError as err:  # refused (body limits, membership, unavailable)
            return [self._send_error(err, frame)], None
        ev = res.event
        ack = F.Ack(conv=frame.conv, client_msg_id=frame.client_msg_id, seq=ev["seq"], ts=ev["ts"], ref=frame.ref)
        return [ack.text()], None

    @staticmethod
    def _send_error(err: ChatError, frame: F.SendFrame) -> str:
        return F.error_frame(err, frame.ref, conv=frame.conv, client_msg_id=frame.client_msg_id)

    async def _on_ping(self, frame: F.PingFrame) -> Answer:
        return [F.Pong(ref=frame.ref).text()], None

    async def _on_receipt(self, frame: F.DeliveredFrame | F.ReadFrame) -> Answer:
        # Answered with nothing; coalesced and applied by the messages service (receipts.py).
        if self.core.receipts is not None:
            delivered, read = (frame.seq, None) if frame.type == "delivered" else (None, frame.seq)
            self.core.receipts.report(self.conn.user, frame.conv, delivered=delivered, read=read)
        return NOTHING

    async def _on_typing(self, frame: F.TypingFrame) -> Answer:
        # Relayed or dropped (rate): answered with nothing; refusals with an error (typing_relay.py).
        if self.core.typing is not None:
            try:
                await self.core.typing.typing(self.conn, frame.conv)
            except ChatError as err:
                return [F.error_frame(err, frame.ref, conv=frame.conv)], None
        return NOTHING


_HANDLERS: dict[str, Callable[[Session, Any], Awaitable[Answer]]] = {
    "auth": Session._on_auth,
    "send": Session._on_send,
    "sync": lambda session, frame: session.sync.answer(frame),
    "ping": Session._on_ping,
    "delivered": Session._on_receipt,
    "read": Session._on_receipt,
    "typing": Session._on_typing,
}
