"""The operators' CLI (``python -m chat_auth.admin``) as a real process on a SQLite file, and
the account RPC ops and revocation publishing over a real nats-server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from chat_bus.rpc import RpcClient
from chat_devtools.nats import NatsServer
from chat_devtools.ports import free_port
from chat_proto.auth_api import UserRevoked
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.subjects import USER_REVOKED_ALL, auth_rpc, user_revoked
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.admin import amain, parser
from chat_auth.publish import NatsRevocationPublisher
from chat_auth.rpc import make_rpc_server
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings

PW = "correct horse battery"


async def cli(settings: AuthSettings, nats_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "AUTH_DATABASE_URL": settings.database_url, "AUTH_NATS_URL": nats_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat_auth.admin",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _dead_nats() -> str:
    return f"nats://127.0.0.1:{free_port()}"  # nothing listens there


async def run(settings: AuthSettings, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in-process (its ``amain``), against the same SQLite file."""
    try:
        parsed = parser().parse_args(args)
    except SystemExit as exc:
        capsys.readouterr()
        return int(exc.code or 0), "", ""
    rc = await amain(parsed, settings.model_copy(update={"nats_url": _dead_nats()}))
    out, err = capsys.readouterr()
    return rc, out, err


async def test_cli_as_a_process(settings: AuthSettings, service: AuthService, accounts: AccountsService) -> None:
    await service.register("root", PW, None)
    alice = (await service.register("alice", PW, None)).id
    pair = await service.login("alice", PW)
    rc, out, err = await cli(settings, _dead_nats(), "deactivate", "alice")
    assert rc == 0 and out.startswith("alice\t") and "deactivated" in out, (out, err)
    assert "WARNING" in err and "NATS" in err, err
    assert (await _code(service.refresh(pair.refresh_token))) == ErrorCode.UNAUTHORIZED
    assert [r["user_id"] for r in (await accounts.revocations())["revocations"]] == [alice]
    rc, _, err = await cli(settings, _dead_nats(), "deactivate", "nobody")
    assert rc == 1 and "no such user" in err
    rc, _, err = await cli(settings, _dead_nats(), "set-admin")
    assert rc == 2 and "usage" in err


async def test_cli_commands(
    settings: AuthSettings, service: AuthService, accounts: AccountsService, capsys: pytest.CaptureFixture[str]
) -> None:
    root = (await service.register("root", PW, None)).id
    alice = (await service.register("alice", PW, None)).id

    rc, out, _ = await run(settings, capsys, "list-admins")
    assert rc == 0 and out.split("\t")[:3] == ["root", root, "admin=yes"]
    rc, out, err = await run(settings, capsys, "set-admin", "alice")
    assert rc == 0 and "admin=yes" in out, err
    rc, out, _ = await run(settings, capsys, "list-admins")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["alice", "root"]
    rc, out, err = await run(settings, capsys, "set-admin", "alice", "--off")
    assert rc == 0 and "admin=no" in out, err
    assert (await accounts.me(alice)).admin is False

    rc, out, err = await run(settings, capsys, "deactivate", "alice")
    assert rc == 0 and "deactivated" in out and "WARNING" in err, (out, err)
    assert (await service.users_exist([alice]))["missing"] == [alice]
    rc, out, err = await run(settings, capsys, "reactivate", "alice")
    assert rc == 0 and "active" in out and not err.strip(), err
    assert (await service.login("alice", PW)).user.id == alice

    # refused: the last admin; unknown user; usage
    rc, _, err = await run(settings, capsys, "set-admin", "root", "--off")
    assert rc == 1 and "last active admin" in err
    rc, _, err = await run(settings, capsys, "deactivate", "root")
    assert rc == 1 and "last active admin" in err
    rc, _, err = await run(settings, capsys, "reactivate", "nobody")
    assert rc == 1 and "no such user" in err
    for bad in ([], ["frobnicate"], ["set-admin"], ["deactivate", "a", "b"], ["set-admin", "x", "--on"]):
        rc, _, _ = await run(settings, capsys, *bad)
        assert rc == 2, bad


async def test_cli_database_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = AuthSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    rc, _, err = await run(settings, capsys, "list-admins")
    assert rc == 3 and "database error" in err


async def _code(coro: object) -> ErrorCode:
    with pytest.raises(ChatError) as info:
        await coro  # type: ignore[misc]
    return info.value.code


# --- with a real nats-server -------------------------------------------------------------------
@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_server.url)
    yield conn
    await conn.drain()


async def _revocations(nc: NATS) -> asyncio.Queue[tuple[str, UserRevoked]]:
    q: asyncio.Queue[tuple[str, UserRevoked]] = asyncio.Queue()

    async def cb(msg: Msg) -> None:
        q.put_nowait((msg.subject, UserRevoked.model_validate_json(msg.data)))

    await nc.subscribe(USER_REVOKED_ALL, cb=cb)
    await nc.flush()
    return q


@pytest.mark.integration
async def test_cli_deactivate_publishes(
    settings: AuthSettings, service: AuthService, nats_server: NatsServer, nc: NATS
) -> None:
    await service.register("root", PW, None)
    alice = (await service.register("alice", PW, None)).id
    got = await _revocations(nc)
    rc, _, err = await cli(settings, nats_server.url, "deactivate", "alice")
    assert rc == 0 and not err.strip(), err
    subject, ev = await asyncio.wait_for(got.get(), 5)
    assert subject == user_revoked(alice) and ev.user_id == alice and ev.reason == "deactivated"


@pytest.mark.integration
async def test_account_rpc_over_nats(nc: NATS, service: AuthService, store_engine_accounts: AccountsService) -> None:
    server = make_rpc_server(nc, service, accounts=store_engine_accounts)
    await server.start()
    try:
        client = RpcClient(nc)
        root = (await service.register("root", PW, None)).id
        bob = (await service.register("bob", PW, None)).id
        got = await _revocations(nc)
        assert await client.call(auth_rpc("me"), {}, user=root) == {
            "id": root,
            "username": "root",
            "display_name": "root",
            "admin": True,
        }
        with pytest.raises(ChatError) as no_user:
            await client.call(auth_rpc("users.search"), {"q": "b"})
        assert no_user.value.code == ErrorCode.UNAUTHORIZED
        found = await client.call(auth_rpc("users.search"), {"q": "b", "limit": 5}, user=bob)
        assert [u["id"] for u in found["users"]] == [bob] and found["next_cursor"] is None
        with pytest.raises(ChatError) as bad_q:
            await client.call(auth_rpc("users.search"), {"q": "", "limit": 5}, user=bob)
        assert bad_q.value.code == ErrorCode.INVALID
        with pytest.raises(ChatError) as forbidden:
            await client.call(auth_rpc("admin.deactivate"), {"user_id": root}, user=bob)
        assert forbidden.value.code == ErrorCode.FORBIDDEN
        out = await client.call(auth_rpc("admin.deactivate"), {"user_id": bob}, user=root)
        assert out["deactivated"] is True and out["admin"] is False
        subject, ev = await asyncio.wait_for(got.get(), 5)
        assert subject == user_revoked(bob) and ev.revoked_at == out["deactivated_at"]
        listed = await client.call(auth_rpc("revocations"), {})
        assert listed["revocations"] == [ev.model_dump()]
        out = await client.call(auth_rpc("admin.set_admin"), {"user_id": bob, "admin": True}, user=root)
        assert out["admin"] is True and out["deactivated"] is True
        out = await client.call(auth_rpc("admin.reactivate"), {"user_id": bob}, user=root)
        assert out["deactivated"] is False and "deactivated_at" not in out
    finally:
        await server.stop()


@pytest.fixture
def store_engine_accounts(engine, nc: NATS) -> AccountsService:  # type: ignore[no-untyped-def]
    return AccountsService(AccountsStore(engine), NatsRevocationPublisher(nc))


async def test_key_rotation_publishes_first_signs_later_and_retires_after_the_tokens_expire(
    settings: AuthSettings, service: AuthService, clock: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``chat-admin keys rotate``: the new kid is in the JWKS at once (after a key reload),
    signs only from AUTH_KEY_PUBLISH_LEAD_S on; tokens of both keys verify with the JWKS in
    the overlap; the old key is unpublished once its last token has expired."""
    import jwt
    from chat_common.db import make_engine

    from chat_auth import keys as signing_keys
    from chat_auth.store import AuthStore

    def kid(token: str) -> str:
        return str(jwt.get_unverified_header(token)["kid"])

    def verifies(token: str) -> bool:
        published = {k["kid"]: jwt.PyJWK(k) for k in service.jwks()["keys"]}
        key = published.get(kid(token))
        if key is None:
            return False
        opts = {"verify_exp": False, "verify_iat": False}  # the fake clock's tokens
        jwt.decode(token, key.key, algorithms=["EdDSA"], audience=settings.audience, options=opts)
        return True

    await service.register("alice", PW, None)
    first = (await service.login("alice", PW)).access_token
    lead, ttl = settings.key_publish_lead_s, settings.access_ttl_s
    engine = make_engine(settings.database_url)
    store = AuthStore(engine)
    try:
        r = await signing_keys.rotate(store, clock(), lead, ttl)
        await service.reload_keys()
        assert [k["kid"] for k in service.jwks()["keys"]] == [kid(first), r.kid] and r.retired == []
        before = (await service.login("alice", PW)).access_token
        assert kid(before) == kid(first)  # published, not signing yet
        clock.advance(lead + 1)
        after = (await service.login("alice", PW)).access_token
        assert kid(after) == r.kid
        assert verifies(before) and verifies(after)  # the overlap
        clock.advance(ttl + signing_keys.RETIRE_LEEWAY_S)
        again = await signing_keys.rotate(store, clock(), lead, ttl)
        await service.reload_keys()
        assert again.retired == [kid(first)]
        assert [k["kid"] for k in service.jwks()["keys"]] == [r.kid, again.kid]
        assert not verifies(before) and verifies(after)
    finally:
        await engine.dispose()

    rc, out, _ = await run(settings, capsys, "keys", "list")
    assert rc == 0 and [ln.split("\t")[0] for ln in out.splitlines()] == [r.kid, again.kid]
    rc, out, _ = await run(settings, capsys, "keys", "rotate")
    assert rc == 0 and out.startswith("added ") and "generation=4" in out
