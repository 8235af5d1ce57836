from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import jwt
import pytest
from chat_proto.auth_api import ACCESS_TOKEN_TYPE, AUDIENCE, RegisterRequest
from chat_proto.errors import ChatError, ErrorCode
from pydantic import ValidationError

from chat_auth.accounts import AccountsService
from chat_auth.service import AuthService, clean_display_name
from chat_auth.store import AuthStore

if TYPE_CHECKING:
    from conftest import FakeClock


PW = "correct horse battery"


async def _err(coro: object) -> ChatError:
    with pytest.raises(ChatError) as info:
        await coro  # type: ignore[misc]
    return info.value


async def test_register_and_duplicate(service: AuthService, store: AuthStore) -> None:
    user = await service.register("alice", PW, None)
    assert user.username == "alice" and user.display_name == "alice"
    assert len(user.id) == 32
    err = await _err(service.register("alice", "another password", "Alice"))
    assert err.code == ErrorCode.CONFLICT
    stored = await store.user_by_username("alice")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert PW not in stored.password_hash


async def test_first_user_is_admin(service: AuthService, store: AuthStore) -> None:
    a = await service.register("first", PW, None)
    b = await service.register("second", PW, None)
    ua, ub = await store.user_by_id(a.id), await store.user_by_id(b.id)
    assert ua is not None and ua.is_admin is True
    assert ub is not None and ub.is_admin is False


def test_request_model_rules() -> None:
    for bad in ("ab", "Alice", "a" * 33, "with space", "bad/char"):
        with pytest.raises(ValidationError):
            RegisterRequest(username=bad, password=PW)
    for bad_pw in ("short", "x" * 129):
        with pytest.raises(ValidationError):
            RegisterRequest(username="okname", password=bad_pw)
    RegisterRequest(username="ok_name.1-2", password="x" * 8)


def test_display_name_cleaning() -> None:
    assert clean_display_name("  Al\x00i\x1bce\u202e \n", "alice") == "Alice"
    assert clean_display_name("\x01\x02", "bob") == "bob"
    assert clean_display_name(None, "bob") == "bob"
    assert len(clean_display_name("é" * 100, "bob")) == 64


async def test_display_name_stored_clean(service: AuthService) -> None:
    user = await service.register("carol", PW, "Ca\x07rol 🙂")
    assert user.display_name == "Carol 🙂"


async def test_login_ok_and_claims(service: AuthService, clock: FakeClock) -> None:
    user = await service.register("alice", PW, "Alice")
    pair = await service.login("alice", PW)
    assert pair.token_type == "Bearer" and pair.expires_in == 900
    assert pair.user == user
    header = jwt.get_unverified_header(pair.access_token)
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt"
    jwks = service.jwks()
    [key] = jwks["keys"]
    assert key["kid"] == header["kid"]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
    }
    public = jwt.PyJWK(key).key
    claims = jwt.decode(
        pair.access_token,
        public,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer="chat-auth",
        options={"verify_exp": False},  # the fake clock is in the past
    )
    assert claims["sub"] == user.id
    assert claims["typ"] == ACCESS_TOKEN_TYPE
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == int(clock().timestamp())
    assert claims["jti"] and claims["sid"]
    refresh_fam, _, _ = pair.refresh_token.partition(".")
    assert refresh_fam  # opaque <id>.<secret>


async def test_real_time_token_verifies(settings, store: AuthStore) -> None:  # type: ignore[no-untyped-def]
    svc = AuthService(settings, store)
    await svc.ensure_signing_key()
    await svc.register("alice", PW, None)
    pair = await svc.login("alice", PW)
    claims = svc.tokens.verify(pair.access_token)
    assert claims["exp"] > time.time()


async def test_refresh_token_is_not_a_jwt(service: AuthService) -> None:
    await service.register("alice", PW, None)
    pair = await service.login("alice", PW)
    with pytest.raises(jwt.exceptions.DecodeError):
        jwt.get_unverified_header(pair.refresh_token)
    with pytest.raises(jwt.InvalidTokenError):
        service.tokens.verify(pair.refresh_token)


async def test_unknown_and_wrong_password_same_error(service: AuthService) -> None:
    await service.register("alice", PW, None)
    wrong = await _err(service.login("alice", "wrong password"))
    unknown = await _err(service.login("nobody", PW))
    assert wrong.code == unknown.code == ErrorCode.UNAUTHORIZED
    assert wrong.to_dict() == unknown.to_dict()


async def test_throttle_locks_then_expires(service: AuthService, clock: FakeClock) -> None:
    await service.register("alice", PW, None)
    for _ in range(5):
        assert (await _err(service.login("alice", "nope nope"))).code == ErrorCode.UNAUTHORIZED
    locked = await _err(service.login("alice", PW))  # right password, still refused
    assert locked.code == ErrorCode.RATE_LIMITED
    assert locked.retry_after_ms == 60_000
    clock.advance(30)
    assert (await _err(service.login("alice", PW))).retry_after_ms == 30_000
    clock.advance(31)
    await service.login("alice", PW)  # unlocked; success resets


async def test_throttle_escalates_and_resets(service: AuthService, clock: FakeClock) -> None:
    await service.register("alice", PW, None)
    for lock_s in (60, 120, 240):
        for _ in range(5):
            await _err(service.login("alice", "nope nope"))
        err = await _err(service.login("alice", PW))
        assert err.code == ErrorCode.RATE_LIMITED and err.retry_after_ms == lock_s * 1000
        clock.advance(lock_s + 1)
    await service.login("alice", PW)
    for _ in range(5):
        await _err(service.login("alice", "nope nope"))
    assert (await _err(service.login("alice", PW))).retry_after_ms == 60_000


async def test_throttle_window_and_unknown_user(service: AuthService, clock: FakeClock) -> None:
    for _ in range(4):
        await _err(service.login("ghost", "nope nope"))
    clock.advance(16 * 60)  # window passed: counting restarts
    for _ in range(4):
        assert (await _err(service.login("ghost", "nope nope"))).code == ErrorCode.UNAUTHORIZED
    await _err(service.login("ghost", "nope nope"))
    assert (await _err(service.login("ghost", PW))).code == ErrorCode.RATE_LIMITED


async def test_success_resets_counter(service: AuthService) -> None:
    await service.register("alice", PW, None)
    for _ in range(4):
        await _err(service.login("alice", "nope nope"))
    await service.login("alice", PW)
    for _ in range(4):
        assert (await _err(service.login("alice", "nope nope"))).code == ErrorCode.UNAUTHORIZED
    await service.login("alice", PW)


async def test_refresh_rotates(service: AuthService) -> None:
    await service.register("alice", PW, None)
    p1 = await service.login("alice", PW)
    p2 = await service.refresh(p1.refresh_token)
    assert p2.refresh_token != p1.refresh_token
    c1 = service.tokens.verify  # sid is preserved across rotation
    sid1 = jwt.decode(p1.access_token, options={"verify_signature": False})["sid"]
    sid2 = jwt.decode(p2.access_token, options={"verify_signature": False})["sid"]
    assert sid1 == sid2 and c1 is not None
    p3 = await service.refresh(p2.refresh_token)
    assert p3.user.username == "alice"


async def test_reuse_revokes_family(service: AuthService) -> None:
    await service.register("alice", PW, None)
    p1 = await service.login("alice", PW)
    p2 = await service.refresh(p1.refresh_token)
    assert (await _err(service.refresh(p1.refresh_token))).code == ErrorCode.UNAUTHORIZED
    # the legitimate successor is dead too
    assert (await _err(service.refresh(p2.refresh_token))).code == ErrorCode.UNAUTHORIZED
    # other sessions are unaffected
    other = await service.login("alice", PW)
    await service.refresh(other.refresh_token)


async def test_concurrent_refresh_only_one_wins(service: AuthService) -> None:
    await service.register("alice", PW, None)
    p1 = await service.login("alice", PW)
    results = await asyncio.gather(*(service.refresh(p1.refresh_token) for _ in range(2)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) <= 1


async def test_refresh_garbage_and_expiry(service: AuthService, clock: FakeClock) -> None:
    await service.register("alice", PW, None)
    p1 = await service.login("alice", PW)
    token_id, _, _ = p1.refresh_token.partition(".")
    for bad in ("garbage", f"{token_id}.wrongsecret", "", p1.access_token):
        assert (await _err(service.refresh(bad))).code == ErrorCode.UNAUTHORIZED
    clock.advance(30 * 24 * 3600 + 1)
    assert (await _err(service.refresh(p1.refresh_token))).code == ErrorCode.UNAUTHORIZED


async def test_logout_revokes_family(service: AuthService) -> None:
    await service.register("alice", PW, None)
    p1 = await service.login("alice", PW)
    p2 = await service.refresh(p1.refresh_token)
    assert await service.logout(p2.refresh_token) == {}
    assert (await _err(service.refresh(p2.refresh_token))).code == ErrorCode.UNAUTHORIZED
    assert await service.logout(p2.refresh_token) == {}  # idempotent
    assert await service.logout("unknown.token") == {}


async def test_deactivated_user(service: AuthService, accounts: AccountsService) -> None:
    await service.register("root", PW, None)
    user = await service.register("alice", PW, None)
    pair = await service.login("alice", PW)
    await accounts.deactivate(user.id)
    assert (await _err(service.login("alice", PW))).code == ErrorCode.UNAUTHORIZED
    assert (await _err(service.refresh(pair.refresh_token))).code == ErrorCode.UNAUTHORIZED
    assert (await service.users_exist([user.id]))["missing"] == [user.id]


async def test_get_user_and_users_exist(service: AuthService) -> None:
    a = await service.register("alice", PW, "Alice")
    assert await service.get_user(a.id) == a
    assert (await _err(service.get_user("nope"))).code == ErrorCode.NOT_FOUND
    res = await service.users_exist([a.id, "x1", a.id, "x2", "x1"])
    assert res == {"missing": ["x1", "x2"]}


async def test_signing_key_shared_between_replicas(settings, store: AuthStore) -> None:  # type: ignore[no-untyped-def]
    a, b = AuthService(settings, store), AuthService(settings, store)
    await asyncio.gather(a.ensure_signing_key(), b.ensure_signing_key())
    assert a.jwks() == b.jwks() and len(a.jwks()["keys"]) == 1
    await a.register("alice", PW, None)
    pair = await a.login("alice", PW)
    assert b.tokens.verify(pair.access_token)["sub"] == pair.user.id
