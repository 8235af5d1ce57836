"""Posting messages: publish a command into JetStream, wait for the stored event.

The messages service answers on this gateway's results subject once the event
is committed. A command JetStream reports as a duplicate (a resend, maybe through
another gateway) is answered by looking the first event up in the store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Histogram

from chat_proto import subjects
from chat_proto.commands import COMMAND_SCHEMA, CommandResult, SendCommand, msg_id
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Attachment
from chat_proto.messages_api import LookupSend, clean_body
from chat_proto.rpc import RpcClient

log = logging.getLogger("chat.gateway.sends")

SEND_LATENCY = Histogram(
    "chat_gateway_send_seconds", "Send: command published to stored event known",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

Key = tuple[str, str, str]


class Sender:
    def __init__(self, nc: NATS, js: JetStreamContext, rpc: RpcClient, gateway_id: str, timeout_s: float) -> None:
        self.nc, self.js, self.rpc = nc, js, rpc
        self.results_subject = subjects.gateway_results(gateway_id)
        self.timeout = timeout_s
        self._waiting: dict[Key, list[asyncio.Future[CommandResult]]] = {}

    async def start(self) -> None:
        await self.nc.subscribe(self.results_subject, cb=self._on_result)

    async def _on_result(self, msg: Msg) -> None:
        try:
            res = CommandResult.model_validate_json(msg.data)
        except Exception:  # noqa: BLE001
            log.warning("bad command result")
            return
        for fut in self._waiting.pop((res.conv, res.sender, res.client_msg_id), []):
            if not fut.done():
                fut.set_result(res)

    async def send(
        self,
        user: str,
        conv: str,
        client_msg_id: str,
        body: str,
        attachments: list[Attachment] | None = None,
        reply_to: int | None = None,
    ) -> CommandResult:
        body = clean_body(body)  # fast refusal of empty or oversized bodies; the store checks again
        loop = asyncio.get_running_loop()
        started = loop.time()
        cmd = SendCommand(
            conv=conv, sender=user, client_msg_id=client_msg_id, body=body,
            attachments=attachments, reply_to=reply_to, reply_subject=self.results_subject,
        )
        key = (conv, user, client_msg_id)
        fut: asyncio.Future[CommandResult] = loop.create_future()
        self._waiting.setdefault(key, []).append(fut)
        poll: asyncio.Task[Any] | None = None
        try:
            try:
                ack = await self.js.publish(
                    subjects.cmd_send(conv),
                    cmd.model_dump_json(exclude_none=True).encode(),
                    headers={"Nats-Msg-Id": msg_id(conv, user, client_msg_id), "Chat-Schema": COMMAND_SCHEMA},
                    timeout=2.0,
                )
            except (nats.errors.Error, TimeoutError) as exc:
                raise ChatError(ErrorCode.UNAVAILABLE, "could not queue the message; retry") from exc
            waits: set[asyncio.Future[Any]] = {fut}
            if ack.duplicate:
                poll = asyncio.create_task(self._poll_store(user, conv, client_msg_id))
                waits.add(poll)
            done, _ = await asyncio.wait(waits, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise ChatError(ErrorCode.UNAVAILABLE, "not stored in time; retry with the same client_msg_id")
            res: CommandResult = next(iter(done)).result()
            SEND_LATENCY.observe(loop.time() - started)
            return res
        finally:
            if poll is not None:
                poll.cancel()
            lst = self._waiting.get(key)
            if lst is not None:
                if fut in lst:
                    lst.remove(fut)
                if not lst:
                    self._waiting.pop(key, None)

    async def _poll_store(self, user: str, conv: str, client_msg_id: str) -> CommandResult:
        delay = 0.05
        while True:
            try:
                ev = await self.rpc.call(
                    subjects.messages_rpc("lookup_send"),
                    LookupSend(conv=conv, client_msg_id=client_msg_id), user=user,
                )
                return CommandResult.model_validate(
                    {"conv": conv, "sender": user, "client_msg_id": client_msg_id,
                     "ok": True, "created": False, "event": ev}
                )
            except ChatError as err:
                if err.code not in (ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE):
                    return CommandResult(conv=conv, sender=user, client_msg_id=client_msg_id,
                                         ok=False, error=err.to_dict())
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)
