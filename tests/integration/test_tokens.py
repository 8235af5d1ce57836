"""Authentication, black-box: access tokens on REST and WebSocket, refresh rotation, logout,
registration and login rules (PROTOCOL §1, §4 "Connecting").

Bad tokens are built here from a real token's claims: a forged signature under the real
``kid``, ``alg: none``, HS256 keyed with the public key, a refresh token, garbage. Audience
and expiry are tested on correctly signed tokens: a gateway that expects another audience,
and a cluster whose access tokens live a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
from chat_devtools.testing import Backend, ClusterFactory
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.chat_client import PASSWORD, Api, User, Ws

PROBLEM_JSON = "application/problem+json"
CLOSE_UNAUTHORIZED = 4001
CLOSE_TOKEN_EXPIRED = 4003


# -- helpers ------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def _raw_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    h = _b64url(json.dumps(header, separators=(",", ":")).encode())
    c = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{h}.{c}.{_b64url(signature)}"


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    h = _b64url(json.dumps(header, separators=(",", ":")).encode())
    c = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{_b64url(sig)}"


def bad_tokens(user: User, jwks: dict[str, Any]) -> dict[str, str]:
    """Tokens that must never authenticate, built from ``user``'s real access token."""
    header, claims = _unverified(user.access_token)
    assert header.get("kid") and header.get("alg") in ("EdDSA", "RS256"), header
    kid = header["kid"]
    fresh = {
        **claims,
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
        "jti": uuid.uuid4().hex,
    }
    other_key = Ed25519PrivateKey.generate()
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    raw_pub = _b64url_decode(jwk["x"]) if jwk.get("kty") == "OKP" else json.dumps(jwk).encode()
    pub_pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"alg": "HS256", "typ": header.get("typ", "JWT"), "kid": kid}
    real_sig = user.access_token.rsplit(".", 1)[1]
    tampered = dict(claims, sub=uuid.uuid4().hex)
    out = {
        # valid header and claims, signed by another Ed25519 key, real kid
        "forged_signature": jwt.encode(
            fresh, other_key, algorithm="EdDSA", headers={"kid": kid, "typ": header.get("typ")}
        ),
        # the real signature over modified claims
        "tampered_claims": _raw_jwt(header, tampered).rsplit(".", 1)[0] + "." + real_sig,
        # forged under a kid the auth service never issued
        "unknown_kid": jwt.encode(fresh, other_key, algorithm="EdDSA", headers={"kid": "not-a-real-kid"}),
        "alg_none": _raw_jwt({"alg": "none", "typ": header.get("typ", "JWT"), "kid": kid}, fresh),
        "alg_none_with_sig": _raw_jwt({"alg": "none", "kid": kid}, fresh, b"x" * 64),
        "hs256_pubkey_raw": _hs256(hs_header, fresh, raw_pub),
        "hs256_pubkey_pem": _hs256(hs_header, fresh, pub_pem),
        "hs256_pubkey_x": _hs256(hs_header, fresh, jwk.get("x", "").encode()),
        "refresh_token": user.refresh_token,
        "garbage": "garbage",
        "three_dots_garbage": "a.b.c",
        "empty_segments": "..",
        "header_only": user.access_token.split(".", 1)[0],
        "unsigned_real_claims": user.access_token.rsplit(".", 1)[0] + ".",
    }
    return out


def assert_unauthorized(r: httpx.Response, what: str = "") -> None:
    assert r.status_code == 401, f"{what}: {r.status_code} {r.text}"
    assert r.headers.get("content-type", "").startswith(PROBLEM_JSON), f"{what}: {r.headers}"
    body = r.json()
    assert body.get("code") == "unauthorized", f"{what}: {body}"


def assert_problem(r: httpx.Response, status: int, code: str, what: str = "") -> dict[str, Any]:
    assert r.status_code == status, f"{what}: {r.status_code} {r.text}"
    assert r.headers.get("content-type", "").startswith(PROBLEM_JSON), f"{what}: {r.headers}"
    body = dict(r.json())
    assert body.get("code") == code, f"{what}: {body}"
    return body


async def me(api: Api, token: str) -> httpx.Response:
    return await api.http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


async def ws_refused(ws_url: str, token: str, wait_s: float = 10) -> tuple[int | None, list[dict[str, Any]]]:
    """Connect, send ``auth`` with ``token``; the close code and any frames before it."""
    ws = await Ws.connect(ws_url)
    try:
        await ws.send({"type": "auth", "token": token})
        code = await ws.wait_closed(wait_s)
        return code, ws.drain()
    finally:
        await ws.close()


async def login(api: Api, username: str, password: str = PASSWORD) -> httpx.Response:
    return await api.http.post("/v1/auth/login", json={"username": username, "password": password})


async def refresh(api: Api, token: str) -> httpx.Response:
    return await api.http.post("/v1/auth/refresh", json={"refresh_token": token})


# -- access tokens ------------------------------------------------------------------------
async def test_valid_token_accepted_and_bad_tokens_refused(cluster: ClusterFactory) -> None:
    c = cluster(fresh=True)  # adds gateways
    # A second gateway on the same bus that expects another audience: real tokens are
    # correctly signed but not for it.
    c.service_env["gateway"] = {"GATEWAY_JWT_AUDIENCE": "other"}
    other_aud = c.add_gateway()
    c.service_env["gateway"] = {"GATEWAY_JWT_ISSUER": "someone-else"}
    other_iss = c.add_gateway()
    async with (
        Api(c.gateway_url) as api,
        Api(other_aud.base_url) as api_aud,
        Api(other_iss.base_url) as api_iss,
    ):
        alice = await api.register_login("alice")

        # valid token: REST 200 and WS auth_ok
        r = await me(api, alice.access_token)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == alice.id and r.json()["username"] == alice.username
        ws = await Ws.connect(c.ws_urls[0])
        await ws.send({"type": "auth", "ref": "a1", "token": alice.access_token})
        ok = await ws.expect("auth_ok", ref="a1")
        assert ok["user_id"] == alice.id and ok["session_id"] and ok["heartbeat_s"] > 0
        await ws.send({"type": "ping", "ref": "p"})
        await ws.expect("pong", ref="p")
        await ws.close()

        # the token header is what auth's README promises
        header, claims = _unverified(alice.access_token)
        assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA" and header["kid"]
        assert claims["typ"] == "access" and claims["sub"] == alice.id
        assert {"iss", "aud", "iat", "exp", "jti", "sid"} <= claims.keys()
        assert claims["exp"] - claims["iat"] <= 900

        r = await api.http.get("/v1/auth/jwks")
        assert r.status_code == 200, r.text
        jwks = r.json()
        assert any(k["kid"] == header["kid"] for k in jwks["keys"]), jwks
        # the JWKS verifies the real token (sanity check of the oracle used below)
        jwt.decode(
            alice.access_token,
            jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key,
            algorithms=[header["alg"]],
            audience=claims["aud"],
            issuer=claims["iss"],
        )

        failures: list[str] = []
        cases = bad_tokens(alice, jwks)
        for name, token in cases.items():
            try:
                assert_unauthorized(await me(api, token), f"REST {name}")
            except AssertionError as e:
                failures.append(str(e))
            try:
                code, frames = await ws_refused(c.ws_urls[0], token)
                assert code == CLOSE_UNAUTHORIZED, f"WS {name}: close {code}, frames {frames}"
                assert not any(f.get("type") == "auth_ok" for f in frames), f"WS {name}: {frames}"
                errs = [f for f in frames if f.get("type") == "error"]
                assert all(f.get("code") == "unauthorized" for f in errs), f"WS {name}: {frames}"
            except AssertionError as e:
                failures.append(str(e))

        # missing / malformed Authorization header on REST
        r = await api.http.get("/v1/me")
        try:
            assert_unauthorized(r, "REST no header")
        except AssertionError as e:
            failures.append(str(e))
        for hdr in ("Basic " + alice.access_token, alice.access_token, "Bearer", "Bearer x"):
            try:
                assert_unauthorized(
                    await api.http.get("/v1/me", headers={"Authorization": hdr}),
                    f"REST header {hdr[:12]!r}",
                )
            except AssertionError as e:
                failures.append(str(e))

        # wrong audience / issuer: a correctly signed, unexpired real token
        for label, a, ws_url in (("aud", api_aud, c.ws_urls[1]), ("iss", api_iss, c.ws_urls[2])):
            try:
                assert_unauthorized(await me(a, alice.access_token), f"REST wrong {label}")
                code, frames = await ws_refused(ws_url, alice.access_token)
                assert code == CLOSE_UNAUTHORIZED, f"WS wrong {label}: close {code}, frames {frames}"
            except AssertionError as e:
                failures.append(str(e))

        # the other gateways are fine otherwise (the refusals above were about the claim)
        r = await me(api, alice.access_token)
        assert r.status_code == 200, r.text
        assert not failures, "\n".join(failures)


async def test_ws_first_frame_must_be_auth(cluster: ClusterFactory) -> None:
    c = cluster()
    async with Api(c.gateway_url) as api:
        alice = await api.register_login("alice")
        for first in (
            {"type": "ping"},
            {"type": "auth"},
            {"type": "auth", "token": 5},
            {"type": "auth", "token": ""},
        ):
            ws = await Ws.connect(c.ws_urls[0])
            await ws.send(first)
            assert await ws.wait_closed() == CLOSE_UNAUTHORIZED, first
            await ws.close()
        # no frame at all within 5 s of the upgrade: 4001
        ws = await Ws.connect(c.ws_urls[0])
        t0 = time.monotonic()
        assert await ws.wait_closed(timeout=8) == CLOSE_UNAUTHORIZED
        assert 4.0 <= time.monotonic() - t0 <= 7.5
        await ws.close()
        # a valid first frame still works afterwards
        ws = await Ws.connect(c.ws_urls[0], alice.access_token)
        await ws.close()


# -- expiry (short access TTL) --------------------------------------------------------------
TTL = 3
REAUTH_TTL = 6


async def _wait_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.time()))


async def test_expired_token_refused_and_open_ws_closed_4003(cluster: ClusterFactory) -> None:
    c = cluster(env={"AUTH_ACCESS_TTL_S": str(TTL)})
    async with Api(c.gateway_url) as api:
        alice = await api.register_login("alice")
        _, claims = _unverified(alice.access_token)
        assert claims["exp"] - claims["iat"] <= TTL, claims

        ws = await Ws.connect(c.ws_urls[0], alice.access_token)
        # no re-auth: closed with 4003 within 5 s after exp
        await _wait_until(claims["exp"])
        code = await ws.wait_closed(timeout=max(1.0, claims["exp"] + 5.5 - time.time()))
        assert code == CLOSE_TOKEN_EXPIRED
        closed_at = time.time()
        assert closed_at <= claims["exp"] + 5.5, (closed_at, claims["exp"])
        await ws.close()

        # the expired token itself: REST 401, WS 4001
        await _wait_until(claims["exp"] + 1.1)
        assert_unauthorized(await me(api, alice.access_token), "REST expired")
        code, frames = await ws_refused(c.ws_urls[0], alice.access_token)
        assert code == CLOSE_UNAUTHORIZED, (code, frames)
        # ... and a fresh one from the refresh token works
        r = await refresh(api, alice.refresh_token)
        assert r.status_code == 200, r.text
        assert (await me(api, r.json()["access_token"])).status_code == 200


async def test_reauth_in_place_keeps_ws_open(cluster: ClusterFactory) -> None:
    # long enough that a token fetched ~3.5 s before the current one expires outlives it
    # by >= 2 s (exp has whole seconds)
    c = cluster(env={"AUTH_ACCESS_TTL_S": str(REAUTH_TTL)})
    async with Api(c.gateway_url) as api:
        alice = await api.register_login("alice")
        bob = await api.register_login("bob")
        _, c1 = _unverified(alice.access_token)
        ws = await Ws.connect(c.ws_urls[0], alice.access_token)
        session = None

        # re-auth twice with fresh tokens of the same user (one from login, one from refresh),
        # each time before the current token expires
        tokens_exp = c1["exp"]
        refresh_token = alice.refresh_token
        for i in range(2):
            await _wait_until(tokens_exp - 3.5)
            r = await refresh(api, refresh_token)
            assert r.status_code == 200, r.text
            pair = r.json()
            refresh_token = pair["refresh_token"]
            _, cn = _unverified(pair["access_token"])
            assert cn["exp"] >= tokens_exp + 2, (cn, tokens_exp)
            await ws.send({"type": "auth", "ref": f"re{i}", "token": pair["access_token"]})
            ok = await ws.expect("auth_ok", ref=f"re{i}", timeout=5)
            assert ok["user_id"] == alice.id
            session = session or ok["session_id"]
            assert ok["session_id"] == session
            # past the previous token's expiry (+ margin): still open and serving
            await _wait_until(tokens_exp + 1.0)
            assert not ws.closed.is_set(), ws.close_code
            await ws.send({"type": "ping", "ref": f"p{i}"})
            await ws.expect("pong", ref=f"p{i}", timeout=5)
            tokens_exp = cn["exp"]

        # the last token runs out: 4003 within 5 s
        code = await ws.wait_closed(timeout=max(1.0, tokens_exp + 5.5 - time.time()))
        assert code == CLOSE_TOKEN_EXPIRED
        await ws.close()

        # another user's token on an authenticated connection: 4001
        r = await login(api, alice.username)
        assert r.status_code == 200, r.text
        ws = await Ws.connect(c.ws_urls[0], r.json()["access_token"])
        r = await login(api, bob.username)
        assert r.status_code == 200, r.text
        await ws.send({"type": "auth", "ref": "x", "token": r.json()["access_token"]})
        assert await ws.wait_closed(timeout=5) == CLOSE_UNAUTHORIZED
        assert not any(f.get("type") == "auth_ok" and f.get("ref") == "x" for f in ws.drain())
        await ws.close()

        # a bad token on an authenticated connection: 4001 too
        r = await login(api, alice.username)
        ws = await Ws.connect(c.ws_urls[0], r.json()["access_token"])
        await ws.send({"type": "auth", "ref": "y", "token": "garbage"})
        assert await ws.wait_closed(timeout=5) == CLOSE_UNAUTHORIZED
        await ws.close()


# -- refresh, logout ----------------------------------------------------------------------
async def test_refresh_rotation_reuse_and_logout(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(backend=backend)
    async with Api(c.gateway_url) as api:
        alice = await api.register_login("alice")
        _, first_claims = _unverified(alice.access_token)

        # rotation: a new pair, both tokens different, the new access token works
        r = await refresh(api, alice.refresh_token)
        assert r.status_code == 200, r.text
        p1 = r.json()
        assert p1["token_type"] == "Bearer"
        assert p1["expires_in"] > 0 and p1["user"]["id"] == alice.id
        assert p1["refresh_token"] != alice.refresh_token and p1["access_token"] != alice.access_token
        _, c1 = _unverified(p1["access_token"])
        assert c1["sub"] == alice.id and c1["sid"] == first_claims["sid"] and c1["jti"] != first_claims["jti"]
        assert (await me(api, p1["access_token"])).status_code == 200

        # and again: a chain of rotations
        r = await refresh(api, p1["refresh_token"])
        assert r.status_code == 200, r.text
        p2 = r.json()

        # reuse of a spent token (the original): 401, and the whole family is revoked
        assert_unauthorized(await refresh(api, alice.refresh_token), "spent refresh token")
        assert_unauthorized(await refresh(api, p2["refresh_token"]), "newest token of a revoked family")
        assert_unauthorized(await refresh(api, p1["refresh_token"]), "middle token of a revoked family")

        # another family (a separate login) is unaffected
        r = await login(api, alice.username)
        assert r.status_code == 200, r.text
        other = r.json()
        r = await refresh(api, other["refresh_token"])
        assert r.status_code == 200, r.text
        other = r.json()

        # logout: 204, then that family cannot refresh (neither the token itself nor a spent one)
        r = await api.http.post("/v1/auth/logout", json={"refresh_token": other["refresh_token"]})
        assert r.status_code == 204, r.text
        assert_unauthorized(await refresh(api, other["refresh_token"]), "refresh after logout")
        # logout is idempotent
        r = await api.http.post("/v1/auth/logout", json={"refresh_token": other["refresh_token"]})
        assert r.status_code == 204, r.text

        # unknown / garbage refresh tokens
        for bad in (
            "garbage",
            "x.y",
            uuid.uuid4().hex + "." + uuid.uuid4().hex,
            alice.access_token,
        ):
            assert_unauthorized(await refresh(api, bad), f"refresh {bad[:10]!r}")

        # concurrent presentation of one refresh token: at most one succeeds
        r = await login(api, alice.username)
        tok = r.json()["refresh_token"]
        rs = await asyncio.gather(*(refresh(api, tok) for _ in range(4)))
        codes = sorted(x.status_code for x in rs)
        assert codes.count(200) <= 1 and set(codes) <= {200, 401}, [x.text for x in rs]


# -- register, login ----------------------------------------------------------------------
async def test_register_and_login_rules(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(backend=backend, env={"AUTH_LOGIN_MAX_FAILURES": "3"})
    async with Api(c.gateway_url) as api:
        reg = "/v1/auth/register"
        name = f"user{uuid.uuid4().hex[:8]}"
        r = await api.http.post(reg, json={"username": name, "password": PASSWORD, "display_name": "User One"})
        assert r.status_code == 201, r.text
        user = r.json()["user"]
        assert user["username"] == name and user["display_name"] == "User One" and user["id"]

        bad_bodies = [
            {"username": "ab", "password": PASSWORD},  # too short
            {"username": "a" * 33, "password": PASSWORD},  # too long
            {"username": "Upper", "password": PASSWORD},  # upper case
            {"username": "sp ace", "password": PASSWORD},
            {"username": "émile", "password": PASSWORD},
            {"username": "x" + uuid.uuid4().hex[:6], "password": "short7!"},  # 7 chars
            {"username": "x" + uuid.uuid4().hex[:6], "password": "p" * 129},  # 129 chars
            {"username": "x" + uuid.uuid4().hex[:6]},  # no password
            {"password": PASSWORD},
            {"username": 12345, "password": PASSWORD},
        ]
        for body in bad_bodies:
            assert_problem(await api.http.post(reg, json=body), 422, "invalid", f"register {body}")
        r = await api.http.post(reg, content=b"{not json", headers={"content-type": "application/json"})
        assert_problem(r, 422, "invalid", "malformed JSON")
        # boundaries that are valid
        for uname, pw in (("a.b", "p" * 8), (uuid.uuid4().hex, "p" * 128), ("a_b-c.9", "pässwörd")):
            r = await api.http.post(reg, json={"username": uname, "password": pw})
            assert r.status_code == 201, f"{uname}: {r.text}"
        # duplicate
        assert_problem(
            await api.http.post(reg, json={"username": name, "password": "another pass"}),
            409,
            "conflict",
        )

        # login: success shape
        r = await login(api, name)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
        assert body["access_token"] and body["refresh_token"] and body["user"]["id"] == user["id"]

        # unknown user and wrong password: 401, identical bodies (apart from nothing)
        r_unknown = await login(api, "nobody" + uuid.uuid4().hex[:8], "whatever pass")
        r_wrong = await login(api, name, "wrong password")
        b_unknown = assert_problem(r_unknown, 401, "unauthorized", "unknown user")
        b_wrong = assert_problem(r_wrong, 401, "unauthorized", "wrong password")
        b_unknown.pop("instance", None), b_wrong.pop("instance", None)
        assert b_unknown == b_wrong
        assert r_unknown.content == r_wrong.content

        # repeated failures on one account → 429 with Retry-After (the right password too)
        victim = await api.register_login("victim")
        codes = []
        for _ in range(6):
            r = await login(api, victim.username, "wrong password")
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert codes[0] == 401 and codes[-1] == 429, codes
        body = assert_problem(r, 429, "rate_limited", "locked account")
        ra = r.headers.get("retry-after")
        assert ra is not None and ra.isdigit() and int(ra) >= 1, r.headers
        r = await login(api, victim.username)
        assert_problem(r, 429, "rate_limited", "locked account, right password")
        assert r.headers.get("retry-after"), r.headers
        # the lock is per account: another user logs in fine
        r = await login(api, name)
        assert r.status_code == 200, r.text
