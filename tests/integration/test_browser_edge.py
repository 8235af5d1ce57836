"""What the gateway does for browsers, through a real stack: the refresh token in an HttpOnly
cookie (opt-in at login, usable only from an allowed Origin), the Origin allowlist on /ws,
CORS on /v1 only for configured origins, the web app's static export at / with its strict
per-page CSP, and /docs from local files."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from chat_gateway.web import inline_script_hashes, prepare
from helpers.chat_client import PASSWORD, Ws

ALLOWED = "https://app.example.com"
OTHER = "https://elsewhere.example.com"


@pytest.fixture(scope="module")
def web_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web") / "out"
    (root / "_next/static").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Chat</title><script>self.boot=1</script><main>chat</main>")
    (root / "404.html").write_text("<!doctype html><title>Not found</title>")
    (root / "_next/static/app-1a2b.js").write_text("console.log('chat');\n" * 100)
    prepare(root)
    return root


@pytest.fixture
def gateway(cluster: ClusterFactory, web_out: Path) -> str:
    env = {
        **NO_RATE_LIMITS,
        "GATEWAY_WEB_DIR": str(web_out),
        "GATEWAY_ALLOWED_ORIGINS": ALLOWED,
        "GATEWAY_CORS_ORIGINS": ALLOWED,
    }
    return str(cluster(env=env).gateway_url)


async def register(http: httpx.AsyncClient) -> str:
    name = f"web{uuid.uuid4().hex[:10]}"
    r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return name


async def test_refresh_token_in_a_cookie(gateway: str) -> None:
    own = gateway.rstrip("/")
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        name = await register(http)
        login = {"username": name, "password": PASSWORD, "session": "cookie"}
        # a cookie session is for browsers of allowed origins only
        r = await http.post("/v1/auth/login", json=login, headers={"Origin": OTHER})
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        r = await http.post("/v1/auth/login", json=login, headers={"Origin": own})
        assert r.status_code == 200, r.text
        assert "refresh_token" not in r.json() and r.json()["access_token"]
        cookie = r.headers["set-cookie"]
        attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
        assert cookie.startswith("chat_refresh=") and {"httponly", "path", "max-age"} <= attributes
        assert "Path=/v1/auth" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "secure" not in attributes  # plain http on loopback
        first = http.cookies.get("chat_refresh")
        assert first

        # refresh with the cookie: a new access token and a rotated cookie
        r = await http.post("/v1/auth/refresh", json={}, headers={"Origin": own})
        assert r.status_code == 200, r.text
        assert "refresh_token" not in r.json() and r.json()["access_token"]
        assert http.cookies.get("chat_refresh") not in (None, first)
        # the cookie from another origin (a cross-site form or script): refused, nothing spent
        r = await http.post("/v1/auth/refresh", json={}, headers={"Origin": OTHER})
        assert r.status_code == 403, r.text
        r = await http.post("/v1/auth/refresh", json={}, headers={"Origin": ALLOWED})  # the allowlist
        assert r.status_code == 200, r.text
        # no Origin and no body token: not a browser's call, so no cookie use
        r = await http.post("/v1/auth/refresh", json={})
        assert r.status_code == 403, r.text
        # logout with the cookie revokes the family and clears the cookie
        spent = http.cookies.get("chat_refresh")
        r = await http.post("/v1/auth/logout", json={}, headers={"Origin": own})
        assert r.status_code == 204, r.text
        assert http.cookies.get("chat_refresh") is None
        r = await http.post("/v1/auth/refresh", json={"refresh_token": spent})
        assert r.status_code == 401, r.text
        r = await http.post("/v1/auth/refresh", json={}, headers={"Origin": own})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text

        # the body flow is unchanged (apps and the SDK)
        r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200 and r.json()["refresh_token"], r.text


async def test_websocket_origin_allowlist(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        name = await register(http)
        r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        token = r.json()["access_token"]
    ws_url = gateway.replace("http://", "ws://").rstrip("/") + "/ws"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url, origin=OTHER)  # type: ignore[arg-type]  # a plain str is fine
    assert refused.value.response.status_code == 403
    for origin in (None, ALLOWED, gateway.rstrip("/")):
        ws = await Ws.connect(ws_url, token, origin=origin)  # asserts auth_ok
        await ws.conn.close()


async def test_cors_only_for_configured_origins(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        r = await http.options("/v1/conversations", headers={"Origin": ALLOWED, **pre})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
        r = await http.options("/v1/conversations", headers={"Origin": OTHER, **pre})
        assert "access-control-allow-origin" not in r.headers
        r = await http.get("/v1/auth/jwks", headers={"Origin": OTHER})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_web_app_and_docs_are_served(gateway: str, web_out: Path) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        r = await http.get("/")
        assert r.status_code == 200 and "<main>chat</main>" in r.text
        (digest,) = inline_script_hashes((web_out / "index.html").read_bytes())
        policy = r.headers["content-security-policy"]
        assert f"script-src 'self' {digest};" in policy and "frame-ancestors 'none'" in policy
        r = await http.get("/_next/static/app-1a2b.js")
        assert r.headers["cache-control"].endswith("immutable") and r.headers["content-encoding"] in ("br", "gzip")
        assert (await http.get("/no/such/page")).status_code == 404
        r = await http.get("/v1/no-such-route")
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        r = await http.get("/docs")
        assert r.status_code == 200 and "swagger-ui-bundle.js" in r.text
        assert (await http.get("/docs/assets/swagger-ui.css")).status_code == 200
        assert (await http.get("/openapi.json")).json()["paths"]["/v1/auth/login"]
        assert (await http.get("/metrics")).status_code == 404  # the public port has none


async def test_users_by_id(gateway: str) -> None:
    """Clients name members and senders they know by id: GET /v1/users/{id}."""
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        name = await register(http)
        r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        me, headers = r.json()["user"], {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.get(f"/v1/users/{me['id']}", headers=headers)
        assert r.status_code == 200 and r.json() == {"id": me["id"], "username": name, "display_name": name}
        assert (await http.get("/v1/users/nobody-like-this", headers=headers)).status_code == 404
        assert (await http.get(f"/v1/users/{me['id']}")).status_code == 401
