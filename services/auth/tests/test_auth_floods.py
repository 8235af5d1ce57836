"""Hardening §3 in auth: the bounded hashing pool, the (name, address) login throttle, and
no implicit first admin in production."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from chat_bus.rpc import current_deadline
from chat_proto.errors import ChatError, ErrorCode
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.passwords import HashPool
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

PW = "correct horse battery"


async def test_hash_pool_refuses_at_once_beyond_its_queue() -> None:
    pool = HashPool(workers=1, queue=2)
    gate = threading.Event()
    running = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(3)]  # 1 running + 2 waiting
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    with pytest.raises(ChatError) as info:
        await pool.run(lambda: True)
    assert time.monotonic() - t0 < 0.05  # at once, not after the queue drained
    assert info.value.code == ErrorCode.UNAVAILABLE and info.value.retry_after_ms
    gate.set()
    assert await asyncio.gather(*running) == [True, True, True]
    assert await pool.run(lambda: 7) == 7  # room again
    pool.close()


async def test_hash_pool_skips_work_whose_caller_gave_up() -> None:
    pool = HashPool(workers=1, queue=5)
    gate = threading.Event()
    ran: list[str] = []
    first = asyncio.ensure_future(pool.run(gate.wait))
    await asyncio.sleep(0.02)
    current_deadline.set(time.time() + 0.05)  # the RPC caller of the next one gives up soon
    late = asyncio.ensure_future(pool.run(lambda: ran.append("late")))
    current_deadline.set(None)
    await asyncio.sleep(0.1)
    gate.set()
    await first
    with pytest.raises(ChatError) as info:
        await late
    assert info.value.code == ErrorCode.UNAVAILABLE and ran == []
    pool.close()


async def test_failures_lock_a_name_only_for_the_address_they_come_from(service: AuthService) -> None:
    await service.register("owner", PW, None)
    for _ in range(5):  # AUTH_LOGIN_MAX_FAILURES
        with pytest.raises(ChatError):
            await service.login("owner", "guess", "203.0.113.9")
    with pytest.raises(ChatError) as locked:
        await service.login("owner", PW, "203.0.113.9")  # even the right password, from there
    assert locked.value.code == ErrorCode.RATE_LIMITED
    pair = await service.login("owner", PW, "198.51.100.7")  # the owner, elsewhere
    assert pair.user.username == "owner"


def _production(tmp_path: Path, token: str = "") -> AuthSettings:
    return AuthSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        environment="production",
        nats_user="chat-auth",
        nats_password="x",
        bootstrap_admin_token=token,
    )


async def test_production_has_no_implicit_first_admin(tmp_path: Path, engine: AsyncEngine) -> None:
    svc = AuthService(_production(tmp_path, token="s3cret-bootstrap"), AuthStore(engine))
    await svc.ensure_signing_key()
    first = await svc.register("first", PW, None)
    accounts = AccountsService(AccountsStore(engine))
    assert (await accounts.me(first.id)).admin is False
    with pytest.raises(ChatError) as wrong:
        await svc.register("mallory", PW, None, bootstrap_token="guess")
    assert wrong.value.code == ErrorCode.FORBIDDEN
    boss = await svc.register("boss", PW, None, bootstrap_token="s3cret-bootstrap")
    assert (await accounts.me(boss.id)).admin is True
    with pytest.raises(ChatError) as again:
        await svc.register("second", PW, None, bootstrap_token="s3cret-bootstrap")
    assert again.value.code == ErrorCode.CONFLICT


async def test_production_without_a_token_configured_refuses_any(tmp_path: Path, engine: AsyncEngine) -> None:
    svc = AuthService(_production(tmp_path), AuthStore(engine))
    await svc.ensure_signing_key()
    with pytest.raises(ChatError) as info:
        await svc.register("first", PW, None, bootstrap_token="anything")
    assert info.value.code == ErrorCode.FORBIDDEN
    first = await svc.register("first", PW, None)
    accounts = AccountsService(AccountsStore(engine))
    assert (await accounts.bootstrap(first.id)).admin is True  # chat-admin bootstrap
    other = await svc.register("other", PW, None)
    with pytest.raises(ChatError) as twice:
        await accounts.bootstrap(other.id)
    assert twice.value.code == ErrorCode.CONFLICT


async def test_chat_admin_bootstrap(tmp_path: Path, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]) -> None:
    from chat_auth.admin import amain, parser

    settings = _production(tmp_path)
    svc = AuthService(settings, AuthStore(engine))
    await svc.ensure_signing_key()
    await svc.register("ops", PW, None)
    await svc.register("late", PW, None)
    assert await amain(parser().parse_args(["bootstrap", "ops"]), settings) == 0
    assert "ops" in capsys.readouterr().out
    assert await amain(parser().parse_args(["bootstrap", "late"]), settings) == 1  # once only
    assert "exists already" in capsys.readouterr().err


def test_display_names_lose_bidi_controls_and_invisible_characters() -> None:
    from chat_auth.service import clean_display_name

    assert clean_display_name("ad\u202emin\u200b\u2066", "x") == "admin"
    assert clean_display_name("\u200b\ufeff", "fallback") == "fallback"
    assert clean_display_name("\U0001f468\u200d\U0001f469", "x") == "\U0001f468\u200d\U0001f469"  # ZWJ stays
