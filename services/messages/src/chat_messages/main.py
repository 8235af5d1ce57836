"""Messages service: the store, RPC routes and command consumer on chat_common.service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_bus import bus, streams
from chat_common.service import ServiceContext, service_app
from chat_proto import subjects
from fastapi import FastAPI

from chat_messages import rpc
from chat_messages.bus_adapters import AuthUserDirectory, NatsPublisher
from chat_messages.channels import Channels
from chat_messages.consumers import CommandConsumer
from chat_messages.conversations import Conversations
from chat_messages.edits import Edits
from chat_messages.privacy import Privacy
from chat_messages.receipts import Receipts
from chat_messages.settings import MessagesSettings
from chat_messages.sharing import Sharing
from chat_messages.store import Store
from chat_messages.writer import Writer

MIGRATIONS = str(Path(__file__).parent / "migrations")


@asynccontextmanager
async def setup(ctx: ServiceContext[MessagesSettings]) -> AsyncIterator[None]:
    assert ctx.engine is not None
    s, js = ctx.settings, ctx.nc.jetstream()
    await bus.ensure_stream(js, streams.cmd_stream(s.js_replicas, s.js_cmd_max_bytes))
    await bus.ensure_stream(js, streams.evt_stream(s.js_replicas, max_bytes=s.js_evt_max_bytes))
    store = Store(ctx.engine)
    ctx.database_check = store.check
    publisher = NatsPublisher(ctx.nc)
    await publisher.start()
    directory = AuthUserDirectory(ctx.client)
    convs = Conversations(store, publisher, directory, s.max_group_size)
    rpc.register(ctx.rpc, convs, Channels(convs))
    rpc.register_sharing(ctx.rpc, Sharing(store))
    rpc.register_privacy(ctx.rpc, Privacy(store, directory))
    rpc.register_receipts_and_edits(ctx.rpc, Receipts(convs, publisher), Edits(convs, s.max_body_codepoints))
    writer = Writer(store, s.max_body_codepoints)
    consumer = CommandConsumer(
        ctx.nc, js, writer, publisher, batch_size=s.batch_size, ack_wait_s=s.ack_wait_s, pull_expires_s=s.pull_expires_s
    )
    await consumer.start()
    try:
        yield
    finally:
        await consumer.stop()


def create_app(settings: MessagesSettings | None = None) -> FastAPI:
    s = settings or MessagesSettings()
    return service_app("messages", s, setup, rpc_queue=subjects.MESSAGES_QUEUE, migrations=MIGRATIONS)
