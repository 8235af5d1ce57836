"""The same flows on PostgreSQL (asyncpg), on the server `make test` starts (CHAT_TEST_PG_URL).

Missing server: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from chat_common.db import make_engine, migrate
from chat_devtools.postgres import scratch_database
from chat_proto.errors import ChatError, ErrorCode
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.main import MIGRATIONS, VERSION_TABLE
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

pytestmark = pytest.mark.postgres

_BASE = os.environ.get("CHAT_TEST_PG_URL", "")
PG_URL = os.environ.get("AUTH_TEST_POSTGRES_URL") or (f"{_BASE.rstrip('/')}/postgres" if _BASE else "")
PW = "correct horse battery"


@pytest.fixture
async def pg_engine(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A fresh database (migrated) on the test server, dropped afterwards. Indirect param
    "icu": the database collates with ICU en-US (not byte order)."""
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CHAT_TEST_PG_URL not set under CI")
        pytest.skip("CHAT_TEST_PG_URL not set (run the tests with `make test`)")
    icu = getattr(request, "param", "") == "icu"
    async with scratch_database(PG_URL.rsplit("/", 1)[0], "auth", icu=icu) as url:
        engine = make_engine(url)
        try:
            await migrate(engine, MIGRATIONS, VERSION_TABLE)
            await migrate(engine, MIGRATIONS, VERSION_TABLE)  # idempotent
            yield url, engine
        finally:
            await engine.dispose()


@pytest.fixture
async def pg_service(pg_engine: tuple[str, AsyncEngine]) -> AuthService:
    url, engine = pg_engine
    settings = AuthSettings(database_url=url, argon2_memory_kib=1024, argon2_time_cost=1)
    store = AuthStore(engine)
    replicas = [AuthService(settings, store) for _ in range(3)]
    await asyncio.gather(*(r.ensure_signing_key() for r in replicas))
    assert len({str(r.jwks()) for r in replicas}) == 1
    return replicas[0]


@pytest.fixture
def pg_accounts(pg_engine: tuple[str, AsyncEngine]) -> AccountsService:
    return AccountsService(AccountsStore(pg_engine[1]))


async def test_flows_on_postgres(pg_service: AuthService) -> None:
    svc = pg_service
    user = await svc.register("alice", PW, "Alice")
    with pytest.raises(ChatError) as dup:
        await svc.register("alice", PW, None)
    assert dup.value.code == ErrorCode.CONFLICT
    pair = await svc.login("alice", PW)
    assert svc.tokens.verify(pair.access_token)["sub"] == user.id
    results = await asyncio.gather(*(svc.refresh(pair.refresh_token) for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) <= 1
    for _ in range(5):
        with pytest.raises(ChatError):
            await svc.login("ghost", "nope nope")
    with pytest.raises(ChatError) as locked:
        await svc.login("ghost", "nope nope")
    assert locked.value.code == ErrorCode.RATE_LIMITED and locked.value.retry_after_ms
    assert await svc.users_exist([user.id, "zz"]) == {"missing": ["zz"]}


async def test_first_admin_race_on_postgres(pg_service: AuthService, pg_accounts: AccountsService) -> None:
    """Concurrent first registrations in separate transactions: exactly one admin."""
    outs = await asyncio.gather(*(pg_service.register(f"user{i}", PW, None) for i in range(8)))
    admins = await pg_accounts.admins()
    assert len(admins) == 1 and admins[0].id in {u.id for u in outs}


async def test_last_admin_race_on_postgres(pg_service: AuthService, pg_accounts: AccountsService) -> None:
    root = (await pg_service.register("root", PW, None)).id
    others = [(await pg_service.register(f"adm{i}", PW, None)).id for i in range(3)]
    for uid in others:
        await pg_accounts.admin_set_admin(root, uid, True)
    everyone = [root, *others]
    results = await asyncio.gather(
        *(pg_accounts.admin_set_admin(u, u, False) for u in everyone), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ChatError)]
    assert [r.code for r in refused] == [ErrorCode.CONFLICT]
    assert len(await pg_accounts.admins()) == 1


@pytest.mark.parametrize("pg_engine", ["default", "icu"], indirect=True)
async def test_directory_on_postgres(pg_service: AuthService, pg_accounts: AccountsService) -> None:
    names = ["al_x", "alxx", "alan", "al.b", "al-c", "alice", "bob"]
    for n in names:
        await pg_service.register(n, PW, None)
    expected = sorted(n for n in names if n.startswith("al"))  # byte order
    seen: list[str] = []
    cursor = None
    while True:
        page = await pg_accounts.search("al", 2, cursor)
        seen += [u["username"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert [u["username"] for u in (await pg_accounts.search("al_", 10, None))["users"]] == ["al_x"]
    assert (await pg_accounts.search("%", 10, None))["users"] == []
