"""The same flows on PostgreSQL (asyncpg), on the server `make test` starts (CHAT_TEST_PG_URL).

Missing server: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from chat_common.db import make_engine, migrate
from chat_proto.errors import ChatError, ErrorCode
from sqlalchemy import text

from chat_auth.main import MIGRATIONS, VERSION_TABLE
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

pytestmark = pytest.mark.postgres

_BASE = os.environ.get("CHAT_TEST_PG_URL", "")
PG_URL = os.environ.get("AUTH_TEST_POSTGRES_URL") or (f"{_BASE.rstrip('/')}/postgres" if _BASE else "")
PW = "correct horse battery"


@pytest.fixture
async def pg_service() -> AsyncIterator[AuthService]:
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CHAT_TEST_PG_URL not set under CI")
        pytest.skip("CHAT_TEST_PG_URL not set (run the tests with `make test`)")
    admin = make_engine(PG_URL)
    db = f"auth_{uuid.uuid4().hex[:12]}"
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{db}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{db}"
    engine = make_engine(url)
    try:
        await migrate(engine, MIGRATIONS, VERSION_TABLE)
        await migrate(engine, MIGRATIONS, VERSION_TABLE)  # idempotent
        settings = AuthSettings(database_url=url, argon2_memory_kib=1024, argon2_time_cost=1)
        store = AuthStore(engine)
        replicas = [AuthService(settings, store) for _ in range(3)]
        await asyncio.gather(*(r.ensure_signing_key() for r in replicas))
        assert len({str(r.jwks()) for r in replicas}) == 1
        yield replicas[0]
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE "{db}" WITH (FORCE)'))
        await admin.dispose()


async def test_flows_on_postgres(pg_service: AuthService) -> None:
    svc = pg_service
    user = await svc.register("alice", PW, "Alice")
    with pytest.raises(ChatError) as dup:
        await svc.register("alice", PW, None)
    assert dup.value.code == ErrorCode.CONFLICT
    pair = await svc.login("alice", PW)
    assert svc.tokens.verify(pair.access_token)["sub"] == user.id
    results = await asyncio.gather(
        *(svc.refresh(pair.refresh_token) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) <= 1
    for _ in range(5):
        with pytest.raises(ChatError):
            await svc.login("ghost", "nope nope")
    with pytest.raises(ChatError) as locked:
        await svc.login("ghost", "nope nope")
    assert locked.value.code == ErrorCode.RATE_LIMITED and locked.value.retry_after_ms
    assert await svc.users_exist([user.id, "zz"]) == {"missing": ["zz"]}
