"""The ports of ``ports.py`` implemented over NATS."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import orjson
from chat_bus import bus
from chat_bus.rpc import RpcClient
from chat_proto import ops, subjects
from chat_proto.auth_api import UserIdsRequest
from chat_proto.events import EVENT_SCHEMA, Event
from chat_proto.messages_api import UserNotice
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


class NatsPublisher:
    """Publishes events into CHAT_EVENTS and waits until JetStream stored all of them.

    JetStream's acknowledgements come back on one inbox subscription of this publisher,
    counted per batch: no request future or timer per event on the write path.
    """

    def __init__(self, nc: NATS, ack_timeout_s: float = 5.0) -> None:
        self.nc = nc
        self.ack_timeout = ack_timeout_s
        self._prefix = bus.inbox(nc, f"chatmsg.{uuid.uuid4().hex}.")
        self._batches: dict[str, _Pending] = {}
        self._ids = itertools.count()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        pending = self._batches.get(msg.subject[len(self._prefix) :])
        if pending is None or pending.fut.done():
            return
        # A stored event is answered with a PubAck ({"stream": ..., "seq": ...}, perhaps
        # "duplicate": true). Anything else fails the batch: an error, or an empty status
        # reply (503 no responders: no stream listens on the subject, e.g. while NATS
        # restores its streams), which must not count as stored.
        if b'"error"' in msg.data or b'"seq"' not in msg.data:
            status = (msg.headers or {}).get("Status", "")
            pending.fut.set_exception(RuntimeError(f"JetStream did not store an event: {status} {msg.data[:200]!r}"))
            return
        pending.left -= 1
        if pending.left == 0:
            pending.fut.set_result(None)

    async def publish_events(self, events: list[Event]) -> None:
        # Published in list order, so per-conversation order is kept on the wire; the
        # Nats-Msg-Id makes a re-publish after a crash a no-op in the stream.
        if not events:
            return
        token = str(next(self._ids))
        pending = _Pending(len(events), asyncio.get_running_loop().create_future())
        self._batches[token] = pending
        reply = self._prefix + token
        try:
            for ev in events:
                await self.nc.publish(
                    subjects.evt_conv(ev.conv),
                    ev.to_json(),
                    reply=reply,
                    headers={"Nats-Msg-Id": f"{ev.conv}:{ev.seq}", "Chat-Schema": EVENT_SCHEMA},
                )
            await asyncio.wait_for(pending.fut, self.ack_timeout)
        finally:
            self._batches.pop(token, None)

    async def notify_membership(self, user: str, event: Event) -> None:
        notice = UserNotice(conv=event.conv, event=event.to_wire())
        await self.nc.publish(subjects.user_notify(user), orjson.dumps(notice.model_dump()))

    async def publish_ephemeral(self, conv: str, frame: bytes) -> None:
        await self.nc.publish(subjects.eph_conv(conv), frame)


class _Pending:
    __slots__ = ("fut", "left")

    def __init__(self, left: int, fut: asyncio.Future[None]) -> None:
        self.left = left
        self.fut = fut


class AuthUserDirectory:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def missing(self, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        res = await self.rpc.request(ops.auth.USERS_EXIST, UserIdsRequest(user_ids=user_ids))
        return res.missing
