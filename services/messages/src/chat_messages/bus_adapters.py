"""The ports of ``ports.py`` implemented over NATS."""

from __future__ import annotations

import asyncio

import orjson
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from chat_proto import subjects
from chat_proto.auth_api import UserIdsRequest
from chat_proto.events import EVENT_SCHEMA, Event
from chat_proto.messages_api import UserNotice
from chat_proto.rpc import RpcClient


class NatsPublisher:
    def __init__(self, nc: NATS, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js

    async def publish_events(self, events: list[Event], *, dedupe: bool = False) -> None:
        # Started in list order, so per-conversation order is kept on the wire; the
        # Nats-Msg-Id makes a re-publish after a crash a no-op in the stream.
        if not events:
            return
        await asyncio.gather(
            *(
                self.js.publish(
                    subjects.evt_conv(ev.conv),
                    ev.to_json(),
                    headers={"Nats-Msg-Id": f"{ev.conv}:{ev.seq}", "Chat-Schema": EVENT_SCHEMA},
                )
                for ev in events
            )
        )

    async def notify_membership(self, user: str, event: Event) -> None:
        notice = UserNotice(conv=event.conv, event=event.to_wire())
        await self.nc.publish(subjects.user_notify(user), orjson.dumps(notice.model_dump()))


class AuthUserDirectory:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def missing(self, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        res = await self.rpc.call(subjects.auth_rpc("users_exist"), UserIdsRequest(user_ids=user_ids))
        return list(res.get("missing", []))
