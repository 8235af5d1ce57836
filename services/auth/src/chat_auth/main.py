"""Auth service: users, passwords, tokens and account state over NATS RPC (HTTP carries the
ops routes only), on the service skeleton (chat_common.service)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat_common.service import ServiceContext, service_app
from chat_proto.subjects import AUTH_QUEUE
from fastapi import FastAPI

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.publish import NatsRevocationPublisher
from chat_auth.rpc import register_account_handlers, register_handlers
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

MIGRATIONS = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version_auth"


@asynccontextmanager
async def setup(ctx: ServiceContext[AuthSettings]) -> AsyncIterator[None]:
    assert ctx.engine is not None
    store = AuthStore(ctx.engine)
    ctx.database_check = store.check
    service = AuthService(ctx.settings, store)
    await service.ensure_signing_key()
    register_handlers(ctx.rpc, service)
    register_account_handlers(ctx.rpc, AccountsService(AccountsStore(ctx.engine), NatsRevocationPublisher(ctx.nc)))
    ctx.background(service.reload_keys_forever(ctx.settings.key_reload_s), "key-reload")
    yield


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    return service_app(
        "auth",
        settings or AuthSettings(),
        setup,
        rpc_queue=AUTH_QUEUE,
        migrations=MIGRATIONS,
        version_table=VERSION_TABLE,
    )
