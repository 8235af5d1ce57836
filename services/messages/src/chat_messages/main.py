"""Messages service: ``create_app(settings)`` builds everything in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.app import install_error_handlers, install_ops_routes, observe_rpc
from chat_common.db import make_engine, migrate
from chat_common.logging import setup_logging
from chat_proto import bus, streams, subjects
from chat_proto.rpc import RpcClient, RpcServer
from fastapi import FastAPI, Request
from sqlalchemy import text

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


def create_app(settings: MessagesSettings | None = None) -> FastAPI:
    settings = settings or MessagesSettings()
    setup_logging("messages", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, settings.db_pool_size)
        if settings.migrate_on_start:
            await migrate(engine, MIGRATIONS, "alembic_version_messages")
        nc = await bus.connect(settings.nats_url, "messages", auth=settings.nats_auth("messages"))
        js = nc.jetstream()
        await bus.ensure_stream(js, streams.cmd_stream(settings.js_replicas, settings.js_cmd_max_bytes))
        await bus.ensure_stream(js, streams.evt_stream(settings.js_replicas, max_bytes=settings.js_evt_max_bytes))
        store = Store(engine)
        publisher = NatsPublisher(nc)
        await publisher.start()
        directory = AuthUserDirectory(RpcClient(nc))
        convs = Conversations(store, publisher, directory, settings.max_group_size)
        server = RpcServer(nc, subjects.MESSAGES_QUEUE, on_request=observe_rpc)
        rpc.register(server, convs, Channels(convs))
        rpc.register_sharing(server, Sharing(store))
        rpc.register_privacy(server, Privacy(store, directory))
        rpc.register_receipts_and_edits(server, Receipts(convs, publisher), Edits(convs, settings.max_body_codepoints))
        await server.start()
        consumer = CommandConsumer(
            nc,
            js,
            Writer(store, settings.max_body_codepoints),
            publisher,
            batch_size=settings.batch_size,
            ack_wait_s=settings.ack_wait_s,
            pull_expires_s=settings.pull_expires_s,
        )
        await consumer.start()
        app.state.nc, app.state.engine, app.state.store = nc, engine, store
        try:
            yield
        finally:
            await consumer.stop()
            await server.stop()
            await bus.close(nc)
            await engine.dispose()

    app = FastAPI(title="chat messages", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)

    async def ready(request: Request) -> dict[str, bool]:
        checks = {"nats": bool(getattr(request.app.state, "nc", None) and request.app.state.nc.is_connected)}
        try:
            # Through the store: on SQLite every transaction shares ONE connection
            # (StaticPool), and only Store.tx() serialises them. A bare engine.connect()
            # here would ROLLBACK a concurrent write transaction when it is returned to the
            # pool (acked sends lost, or last_seq left behind stored events).
            async with request.app.state.store.tx() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:
            checks["database"] = False
        return checks

    install_ops_routes(app, ready)
    return app
