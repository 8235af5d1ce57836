"""Posting messages: publish a command into JetStream, wait for the stored event.

The messages service answers on this gateway's results subject once the event is
committed. JetStream's publish acknowledgements come back on this gateway's own inbox
(one subscription, no per-send request machinery); one that reports a duplicate (a
resend, maybe through another gateway) makes us look the first event up in the store,
and, when none turns up within a moment (the first attempt was refused, or is still
queued), publish the command again under a one-time id: the store's idempotency key
makes that safe, and a refusal is answered again at once instead of timing out.
This is the hot path of every send, so it avoids per-message pydantic work: the command
is encoded straight from the fields of ``SendCommand`` and the result read as JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from typing import Any

import orjson
from chat_proto import subjects
from chat_proto.commands import COMMAND_SCHEMA, msg_id
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Attachment
from chat_proto.messages_api import clean_body
from chat_proto.ops import wire
from prometheus_client import Histogram

from chat_gateway.admission import CONNECTION, GATEWAY, REFUSED, Admission, ConnectionSends, overloaded
from chat_gateway.limits import SEND, Limits
from chat_gateway.ports import Bus, BusMessage, MediaApi, MessagesApi

log = logging.getLogger("chat.gateway.sends")

SEND_LATENCY = Histogram(
    "chat_gateway_send_seconds",
    "Send: command published to stored event known",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

Key = tuple[str, str, str]


class SendResult:
    """What the store answered: the event (as its wire dict) and whether it is new."""

    __slots__ = ("created", "event")

    def __init__(self, event: dict[str, Any], created: bool) -> None:
        self.event = event
        self.created = created


class Sender:
    def __init__(
        self,
        bus: Bus,
        messages: MessagesApi,
        gateway_id: str,
        timeout_s: float,
        republish_after_s: float = 1.0,
        admission: Admission | None = None,
        media: MediaApi | None = None,
    ) -> None:
        self.bus, self.messages, self.media = bus, messages, media
        self.results_subject = subjects.gateway_results(gateway_id)
        self._ack_prefix = bus.inbox(f"chatgw.{gateway_id}.")
        self._ids = itertools.count()
        self.timeout = timeout_s
        self.republish_after = republish_after_s
        self._waiting: dict[Key, list[asyncio.Future[SendResult]]] = {}
        self._by_token: dict[str, tuple[Key, asyncio.Future[SendResult], bytes]] = {}
        # The transports charge a send token before calling send(); a replay of a stored
        # client_msg_id (created: false) costs nothing, so its token is given back here.
        self.limits: Limits | None = None
        self.admission = admission or Admission(max_inflight=2000, min_inflight=16, target_s=0.25)

    async def start(self) -> None:
        await self.bus.subscribe(self.results_subject, self._on_result)
        await self.bus.subscribe(self._ack_prefix + "*", self._on_puback)

    async def _on_result(self, msg: BusMessage) -> None:
        # chat_proto.commands.CommandResults, read as plain JSON on this hot path.
        try:
            results = orjson.loads(msg.data)["results"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("bad command results")
            return
        for res in results:
            try:
                key = (res["conv"], res["sender"], res["client_msg_id"])
            except (KeyError, TypeError):
                continue
            for fut in self._waiting.pop(key, []):
                if fut.done():
                    continue
                if res.get("ok") and res.get("event"):
                    fut.set_result(SendResult(res["event"], bool(res.get("created"))))
                else:
                    fut.set_exception(ChatError.from_dict(res.get("error") or {}))

    async def _on_puback(self, msg: BusMessage) -> None:
        entry = self._by_token.pop(msg.subject[len(self._ack_prefix) :], None)
        if entry is None:
            return
        key, fut, payload = entry
        try:
            ack = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return
        if fut.done():
            return
        if "error" in ack:
            fut.set_exception(ChatError(ErrorCode.UNAVAILABLE, "could not queue the message; retry"))
        elif ack.get("duplicate"):
            task = asyncio.create_task(self._settle_duplicate(key, fut, payload))
            fut.add_done_callback(lambda _f: task.cancel())

    async def send(
        self,
        user: str,
        conv: str,
        client_msg_id: str,
        body: str,
        attachments: list[str] | None = None,
        reply_to: int | None = None,
        connection: ConnectionSends | None = None,
    ) -> SendResult:
        """``attachments``: ids of the sender's uploads, resolved by the media service into
        the attachment objects the command carries (the body may then be empty)."""
        # fast refusal of empty or oversized bodies; the store checks again
        body = clean_body(body, allow_empty=bool(attachments))
        if attachments and self.media is None:
            raise ChatError(ErrorCode.INVALID, "attachments: media is not enabled on this server")
        self._admit(user, connection)  # or unavailable at once: overload is shed, not queued
        loop = asyncio.get_running_loop()
        started = loop.time()
        waited: float | None = None  # how long the store took to answer, for admission
        try:
            resolved = await self.media.resolve(user, attachments) if attachments and self.media else None
            res = await self._send(user, conv, client_msg_id, body, resolved, reply_to)
            waited = loop.time() - started
            return res
        except _NotQueued as exc:
            raise ChatError(ErrorCode.UNAVAILABLE, "could not queue the message; retry") from exc.__cause__
        except ChatError:
            waited = loop.time() - started  # refused by the store, or not stored in time
            raise
        finally:
            self.admission.leave(waited)
            if connection is not None:
                connection.leave()

    def refuse_now(self, user: str, connection: ConnectionSends | None) -> ChatError | None:
        """The refusal ``send`` would raise at admission right now, or None (nothing is
        taken: the send then goes through ``send`` as usual). Past capacity most frames are
        refused; this lets the WebSocket reader answer them without a task, a coroutine or
        an exception per frame. A refusal gives the rate-limit token back, as ``send`` does."""
        if connection is not None and connection.inflight >= connection.max:
            reason = CONNECTION
        elif self.admission.full():
            reason = GATEWAY
            self.admission.refusing()
        else:
            return None
        REFUSED.labels(reason).inc()
        if self.limits is not None:
            self.limits.refund(user, SEND)
        return overloaded(self.admission.retry_after_ms())

    def _admit(self, user: str, connection: ConnectionSends | None) -> None:
        """Per connection, then per gateway (admission.py); a refused send gives its
        rate-limit token back: it was not stored, and its retry pays again."""
        try:
            if connection is not None:
                connection.enter(self.admission.retry_after_ms())
            try:
                self.admission.enter()
            except ChatError:
                if connection is not None:
                    connection.leave()
                raise
        except ChatError:
            if self.limits is not None:
                self.limits.refund(user, SEND)
            raise

    async def _send(
        self,
        user: str,
        conv: str,
        client_msg_id: str,
        body: str,
        attachments: list[Attachment] | None,
        reply_to: int | None,
    ) -> SendResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The fields of chat_proto.commands.SendCommand (v1); the messages service validates it.
        cmd: dict[str, Any] = {
            "v": 1,
            "conv": conv,
            "sender": user,
            "client_msg_id": client_msg_id,
            "body": body,
            "reply_subject": self.results_subject,
        }
        if attachments:
            cmd["attachments"] = [a.model_dump(exclude_none=True) for a in attachments]
        if reply_to is not None:
            cmd["reply_to"] = reply_to
        key = (conv, user, client_msg_id)
        fut: asyncio.Future[SendResult] = loop.create_future()
        self._waiting.setdefault(key, []).append(fut)
        token = str(next(self._ids))
        payload = orjson.dumps(cmd)
        self._by_token[token] = (key, fut, payload)
        timer = loop.call_later(self.timeout, _expire, fut)
        try:
            try:
                await self.bus.publish(
                    subjects.cmd_send(conv),
                    payload,
                    reply=self._ack_prefix + token,
                    headers={"Nats-Msg-Id": msg_id(conv, user, client_msg_id), "Chat-Schema": COMMAND_SCHEMA},
                )
            except Exception as exc:
                raise _NotQueued from exc
            res = await fut
            SEND_LATENCY.observe(loop.time() - started)
            if not res.created and self.limits is not None:
                self.limits.refund(user, SEND)
            return res
        finally:
            timer.cancel()
            self._by_token.pop(token, None)
            lst = self._waiting.get(key)
            if lst is not None:
                if fut in lst:
                    lst.remove(fut)
                if not lst:
                    self._waiting.pop(key, None)

    async def _settle_duplicate(self, key: Key, fut: asyncio.Future[SendResult], payload: bytes) -> None:
        if await self._poll_store(key, self.republish_after):
            return
        conv, user, client_msg_id = key
        token = str(next(self._ids))
        self._by_token[token] = (key, fut, payload)
        fut.add_done_callback(lambda _f: self._by_token.pop(token, None))
        once = f"{msg_id(conv, user, client_msg_id)}:again:{uuid.uuid4().hex}"
        try:
            await self.bus.publish(
                subjects.cmd_send(conv),
                payload,
                reply=self._ack_prefix + token,
                headers={"Nats-Msg-Id": once, "Chat-Schema": COMMAND_SCHEMA},
            )
        except Exception:
            return  # the send times out as unavailable; the client retries
        # The answer comes like any other: on the results subject.

    async def _poll_store(self, key: Key, within: float) -> bool:
        """Look the first event of ``key`` up until found (True: the waiters are answered)
        or ``within`` seconds passed (False)."""
        conv, user, client_msg_id = key
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        delay = 0.05
        while key in self._waiting:
            try:
                ev = wire(await self.messages.lookup_send(user, conv, client_msg_id))
                for fut in self._waiting.pop(key, []):
                    if not fut.done():
                        fut.set_result(SendResult(ev, False))
                return True
            except ChatError as err:
                if err.code not in (ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE):
                    for fut in self._waiting.pop(key, []):
                        if not fut.done():
                            fut.set_exception(err)
                    return True
            if loop.time() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(0.4, delay * 2)
        return True


class _NotQueued(Exception):
    """Publishing the command failed: nothing is known about the store."""


def _expire(fut: asyncio.Future[SendResult]) -> None:
    if not fut.done():
        fut.set_exception(ChatError(ErrorCode.UNAVAILABLE, "not stored in time; retry with the same client_msg_id"))
