"""The ports of ``ports.py`` over NATS: the only gateway module that knows nats-py's client
(besides the lifespan in ``main.py``, which connects)."""

from __future__ import annotations

from chat_bus import bus
from chat_bus.rpc import RpcClient
from chat_proto import ops
from chat_proto.events import Attachment
from chat_proto.media_api import ResolveAttachments
from chat_proto.messages_api import EventsRange, LookupSend, SyncPosition, SyncQuery, UserRef
from chat_proto.replies import Events, SyncReply, UserConvs, WireEvent
from nats.aio.client import Client as NATS

from chat_gateway.ports import Handler, Subscription


class NatsBus:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc

    def inbox(self, name: str) -> str:
        return bus.inbox(self.nc, name)

    async def publish(
        self, subject: str, data: bytes, *, reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        await self.nc.publish(subject, data, reply=reply, headers=headers)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        return await self.nc.subscribe(subject, cb=handler)

    async def flush(self, timeout: float) -> None:
        await self.nc.flush(timeout=int(max(1, timeout)))

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)


class RpcMediaApi:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def resolve(self, user: str, media_ids: list[str]) -> list[Attachment]:
        res = await self.rpc.request(ops.media.RESOLVE, ResolveAttachments(media_ids=media_ids), user=user)
        return res.attachments


class RpcMessagesApi:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def user_convs(self, user: str) -> UserConvs:
        return await self.rpc.request(ops.messages.USER_CONVS, UserRef(user_id=user))

    async def events(self, conv: str, after: int, before: int | None = None) -> Events:
        return await self.rpc.request(ops.messages.EVENTS, EventsRange(conv=conv, after=after, before=before))

    async def sync(self, user: str, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> SyncReply:
        q = SyncQuery(
            positions=[SyncPosition(conv=c, after=a) for c, a in positions], per_conv=per_conv, max_bytes=max_bytes
        )
        return await self.rpc.request(ops.messages.SYNC, q, user=user)

    async def lookup_send(self, user: str, conv: str, client_msg_id: str) -> WireEvent:
        req = LookupSend(conv=conv, client_msg_id=client_msg_id)
        return await self.rpc.request(ops.messages.LOOKUP_SEND, req, user=user)
