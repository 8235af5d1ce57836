"""Account state (admin flag, deactivation) and the user directory, on SQLite."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import jwt
import pytest
from alembic import command
from chat_common.db import _alembic_config, make_engine, migrate
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.timefmt import epoch_ms, format_ts
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore, like_prefix
from chat_auth.main import MIGRATIONS, VERSION_TABLE
from chat_auth.service import ACCOUNT_DEACTIVATED, BAD_CREDENTIALS, AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

if TYPE_CHECKING:
    from conftest import FakeClock, RecordingPublisher

PW = "correct horse battery"


async def _err(coro: object) -> ChatError:
    with pytest.raises(ChatError) as info:
        await coro  # type: ignore[misc]
    return info.value


async def _users(service: AuthService, *names: str) -> list[str]:
    return [(await service.register(n, PW, None)).id for n in names]


# --- first admin -----------------------------------------------------------------------------
async def test_concurrent_first_registrations_make_one_admin(service: AuthService, engine: AsyncEngine) -> None:
    outs = await asyncio.gather(*(service.register(f"user{i}", PW, None) for i in range(8)))
    rows = await AccountsStore(engine).admins()
    assert len(rows) == 1 and rows[0].id in {u.id for u in outs}
    async with engine.connect() as conn:
        boot = (await conn.execute(text("SELECT id, user_id FROM admin_bootstrap"))).all()
    assert [tuple(r) for r in boot] == [(1, rows[0].id)]


async def test_migration_seeds_bootstrap_for_existing_users(settings: AuthSettings) -> None:
    """A database that already had users before 0002: a new registrant is not admin."""
    eng = make_engine(settings.database_url)
    cfg = _alembic_config(MIGRATIONS, VERSION_TABLE)

    def to_0001(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")

    async with eng.begin() as conn:
        await conn.run_sync(to_0001)
        await conn.execute(
            text(
                "INSERT INTO users (id, username, display_name, password_hash, created_at, is_admin) "
                "VALUES ('old1', 'old', 'old', 'x', '2025-01-01 00:00:00', 1)"
            )
        )
    await migrate(eng, MIGRATIONS, VERSION_TABLE)
    service = AuthService(settings, AuthStore(eng))
    await service.ensure_signing_key()
    new = await service.register("newbie", PW, None)
    accounts = AccountsService(AccountsStore(eng))
    assert (await accounts.me(new.id)).admin is False
    assert (await accounts.me("old1")).admin is True
    await eng.dispose()


# --- deactivation ------------------------------------------------------------------------------
async def test_deactivate_revokes_families_and_refuses_login(
    service: AuthService, accounts: AccountsService, publisher: RecordingPublisher, clock: FakeClock
) -> None:
    root, alice = await _users(service, "root", "alice")
    p1, p2 = await service.login("alice", PW), await service.login("alice", PW)
    clock.advance(0.25)
    out = await accounts.admin_deactivate(root, alice)
    assert out.deactivated and out.deactivated_at == format_ts(clock.t) and not out.admin
    for pair in (p1, p2):
        assert (await _err(service.refresh(pair.refresh_token))).code == ErrorCode.UNAUTHORIZED
    right = await _err(service.login("alice", PW))
    wrong = await _err(service.login("alice", "not the password"))
    assert right.code == wrong.code == ErrorCode.UNAUTHORIZED
    assert right.message == ACCOUNT_DEACTIVATED and wrong.message == BAD_CREDENTIALS
    assert [(e.v, e.user_id, e.revoked_at, e.reason) for e in publisher.events] == [
        (1, alice, format_ts(clock.t), "deactivated")
    ]
    assert (await service.users_exist([alice]))["missing"] == [alice]
    assert (await accounts.revocations())["revocations"] == [publisher.events[0].model_dump()]


async def test_reactivate_needs_new_login_and_old_tokens_stay_dead(
    service: AuthService, accounts: AccountsService, clock: FakeClock
) -> None:
    root, alice = await _users(service, "root", "alice")
    old = await service.login("alice", PW)
    clock.advance(0.4)
    deactivated = await accounts.admin_deactivate(root, alice)
    clock.advance(0.0004)  # same millisecond: the new token must still come after the revocation
    out = await accounts.admin_reactivate(root, alice)
    assert not out.deactivated and out.deactivated_at is None
    assert (await _err(service.refresh(old.refresh_token))).code == ErrorCode.UNAUTHORIZED
    new = await service.login("alice", PW)
    iat = jwt.decode(new.access_token, options={"verify_signature": False})["iat"]
    revoked = (await accounts.revocations())["revocations"]
    # the revocation stays listed (old access tokens stay refused by gateways) ...
    assert [(r["user_id"], r["revoked_at"]) for r in revoked] == [(alice, deactivated.deactivated_at)]
    # ... and the new token (same millisecond) is issued strictly after it: the login
    # waited for the clock to pass the revocation, and only that long
    assert iat > _epoch(revoked[0]["revoked_at"]) and iat == epoch_ms(clock.t) / 1000
    assert clock.t - datetime.fromisoformat(deactivated.deactivated_at or "") <= timedelta(milliseconds=2)
    assert (await service.refresh(new.refresh_token)).user.id == alice


async def test_login_after_reactivation_survives_early_timers(
    service: AuthService, accounts: AccountsService, clock: FakeClock
) -> None:
    """Event-loop timers may fire early (uvloop truncates to whole milliseconds): a login
    that slept once "until after the revocation" and then issued its token anyway got a
    token gateways refuse. The issuer re-reads the clock until it has really passed."""
    root, alice = await _users(service, "root", "alice")
    deactivated = await accounts.admin_deactivate(root, alice)
    await accounts.admin_reactivate(root, alice)
    slept: list[float] = []

    async def early(seconds: float) -> None:  # wakes up short of what was asked
        slept.append(seconds)
        clock.advance(seconds * 0.4)

    service._sleep = early
    new = await service.login("alice", PW)
    iat = jwt.decode(new.access_token, options={"verify_signature": False})["iat"]
    assert iat > _epoch(deactivated.deactivated_at or "")
    assert len(slept) >= 2


def test_deactivate_reactivate_login_within_a_second_every_time(settings: AuthSettings) -> None:
    """Real clock, real timers, the loop the service runs on (uvloop): a user deactivated,
    reactivated and logging in at once gets a token that gateways accept, every time."""
    import uvloop

    async def scenario() -> list[float]:
        eng = make_engine(settings.database_url)
        await migrate(eng, MIGRATIONS, VERSION_TABLE)
        service = AuthService(settings, AuthStore(eng))
        await service.ensure_signing_key()
        accounts = AccountsService(AccountsStore(eng))
        root, alice = await _users(service, "root", "alice")
        took = []
        for _ in range(20):
            t0 = time.monotonic()
            out = await accounts.admin_deactivate(root, alice)
            await accounts.admin_reactivate(root, alice)
            pair = await service.login("alice", PW)
            took.append(time.monotonic() - t0)
            iat = jwt.decode(pair.access_token, options={"verify_signature": False})["iat"]
            # the gateways' rule (chat_gateway.revocations): refused iff iat <= revoked_at
            assert iat > _epoch(out.deactivated_at or ""), (iat, out.deactivated_at)
        await eng.dispose()
        return took

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        took = runner.run(scenario())
    print(f"deactivate + reactivate + login, s: max {max(took):.3f}")


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


async def test_revocations_window(service: AuthService, accounts: AccountsService, clock: FakeClock) -> None:
    root, a, b = await _users(service, "root", "aaa", "bbb")
    await accounts.admin_deactivate(root, a)
    clock.advance(600)
    await accounts.admin_deactivate(root, b)
    assert [r["user_id"] for r in (await accounts.revocations())["revocations"]] == [b, a]
    clock.advance(400)  # a: 1000 s ago > 900 + 60
    assert [r["user_id"] for r in (await accounts.revocations())["revocations"]] == [b]


# --- admin rules -------------------------------------------------------------------------------
async def test_admin_only_and_unknown_users(service: AuthService, accounts: AccountsService) -> None:
    root, bob, carol = await _users(service, "root", "bob", "carol")
    for op in (
        accounts.admin_deactivate(bob, carol),
        accounts.admin_reactivate(bob, carol),
        accounts.admin_set_admin(bob, bob, True),
        accounts.admin_deactivate(bob, "no-such-user"),  # 403 before 404: nothing leaks
        accounts.admin_deactivate("no-such-actor", carol),
    ):
        assert (await _err(op)).code == ErrorCode.FORBIDDEN
    for op in (
        accounts.admin_deactivate(root, "no-such-user"),
        accounts.admin_reactivate(root, "no-such-user"),
        accounts.admin_set_admin(root, "no-such-user", True),
    ):
        assert (await _err(op)).code == ErrorCode.NOT_FOUND
    assert (await accounts.me(root)).admin and not (await accounts.me(bob)).admin


async def test_last_admin_rules(service: AuthService, accounts: AccountsService) -> None:
    root, bob = await _users(service, "root", "bob")
    assert (await _err(accounts.admin_deactivate(root, root))).code == ErrorCode.CONFLICT
    assert (await _err(accounts.admin_set_admin(root, root, False))).code == ErrorCode.CONFLICT
    assert (await _err(accounts.deactivate(root))).code == ErrorCode.CONFLICT  # operator path too
    assert (await accounts.admin_set_admin(root, bob, True)).admin
    assert (await _err(accounts.admin_deactivate(bob, bob))).code == ErrorCode.CONFLICT  # never self
    assert not (await accounts.admin_set_admin(bob, bob, False)).admin  # root remains
    assert (await _err(accounts.admin_set_admin(root, root, False))).code == ErrorCode.CONFLICT
    # a deactivated admin is not an admin while deactivated, and does not count as one
    await accounts.admin_set_admin(root, bob, True)
    await accounts.admin_deactivate(root, bob)
    assert (await _err(accounts.admin_reactivate(bob, bob))).code == ErrorCode.FORBIDDEN
    assert (await _err(accounts.admin_set_admin(root, root, False))).code == ErrorCode.CONFLICT
    assert (await accounts.admin_reactivate(root, bob)).admin


async def test_two_admins_demoting_themselves_at_once(service: AuthService, accounts: AccountsService) -> None:
    root, bob = await _users(service, "root", "bob")
    await accounts.admin_set_admin(root, bob, True)
    results = await asyncio.gather(
        accounts.admin_set_admin(root, root, False),
        accounts.admin_set_admin(bob, bob, False),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["AccountOut", "ChatError"]
    assert len(await accounts.admins()) == 1


# --- directory ---------------------------------------------------------------------------------
def test_like_prefix_escapes() -> None:
    assert like_prefix("a_b%c\\") == "a\\_b\\%c\\\\%"


async def test_directory_prefix_escaping_and_exclusion(service: AuthService, accounts: AccountsService) -> None:
    names = ["al_x", "alxx", "alan", "alice", "al.b", "al-c", "bob", "xal"]
    ids = dict(zip(names, await _users(service, *names), strict=True))

    async def found(q: str, limit: int = 50) -> list[str]:
        return [u["username"] for u in (await accounts.search(q, limit, None))["users"]]

    assert await found("al") == sorted(n for n in names if n.startswith("al"))
    assert await found("AL") == await found("al")
    assert await found("al_") == ["al_x"]  # "_" is literal, not "any character"
    assert await found("al%") == [] and await found("%") == [] and await found("_") == []
    assert await found("alice") == ["alice"] and await found("alicex") == []
    await accounts.deactivate(ids["alice"])
    assert "alice" not in await found("al")
    res = await accounts.search("bob", 20, None)
    assert res == {"users": [{"id": ids["bob"], "username": "bob", "display_name": "bob"}], "next_cursor": None}


async def test_directory_pagination(service: AuthService, accounts: AccountsService) -> None:
    names = [f"pg{i:02d}" for i in range(7)]
    await _users(service, *reversed(names), "other")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await accounts.search("pg", 3, cursor)
        seen += [u["username"] for u in page["users"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names and pages == 3
    exact = await accounts.search("pg", 7, None)
    assert len(exact["users"]) == 7 and exact["next_cursor"] is None
