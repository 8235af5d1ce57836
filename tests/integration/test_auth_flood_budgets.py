"""Authentication floods (hardening §3), against a real gateway and auth.

- /v1/auth/login has a per-address and a global budget at the gateway (429 + Retry-After);
  behind a trusted proxy the address is the forwarded one, and a forged ``X-Forwarded-For``
  from anyone else is ignored.
- Wrong passwords lock a name only for the address they come from: the owner, elsewhere,
  still logs in.
- auth hashes passwords in a bounded pool: a burst beyond it is answered 503 at once, not
  after a wait.
- A registration with a wrong bootstrap token is refused.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from chat_devtools.testing import ClusterFactory

PASSWORD = "correct horse battery"
LOGIN_BURST, LOGIN_GLOBAL = 5, 30
ENV = {
    "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",  # the test client plays a proxy for many addresses
    "GATEWAY_RATE_LOGIN_BURST": str(LOGIN_BURST),
    "GATEWAY_RATE_LOGIN_PER_S": "0.001",
    "GATEWAY_RATE_LOGIN_GLOBAL_BURST": str(LOGIN_GLOBAL),
    "GATEWAY_RATE_LOGIN_GLOBAL_PER_S": "0.001",
    "GATEWAY_RATE_REGISTER_BURST": "50",
    "GATEWAY_RATE_REGISTER_GLOBAL_BURST": "500",
    "AUTH_LOGIN_MAX_FAILURES": "3",
    # hashing that costs something, one at a time, two waiting
    "AUTH_ARGON2_MEMORY_KIB": str(32 * 1024),
    "AUTH_ARGON2_TIME_COST": "2",
    "AUTH_HASH_WORKERS": "1",
    "AUTH_HASH_QUEUE": "2",
}


async def login(http: httpx.AsyncClient, username: str, password: str, via: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": via} if via else {}
    return await http.post("/v1/auth/login", json={"username": username, "password": password}, headers=headers)


def refused(r: httpx.Response, by: str) -> bool:
    return (
        r.status_code == 429
        and r.json()["code"] == "rate_limited"
        and by in r.json()["detail"]
        and bool(r.headers.get("retry-after"))
    )


async def test_login_budgets_lockout_by_address_and_hash_pool(cluster: ClusterFactory) -> None:
    c = cluster(env=ENV)
    url = c.gateway_url
    gw = c.gateways[0]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post(
            "/v1/auth/register",
            json={"username": "owner", "password": PASSWORD},
            headers={"X-Forwarded-For": "10.9.0.1"},
        )
        assert r.status_code == 201, r.text
        used = 0  # tokens of the global login budget spent so far

        # (name, address): three wrong passwords lock "owner" for 10.3.0.1 only
        for _ in range(3):
            assert (await login(http, "owner", "wrong password", "10.3.0.1")).status_code == 401
        r = await login(http, "owner", PASSWORD, "10.3.0.1")
        assert refused(r, "failed logins"), r.text  # auth's lock, even with the right password
        r = await login(http, "owner", PASSWORD, "10.3.0.2")
        assert r.status_code == 200, r.text  # the owner, from elsewhere
        used += 5

        # a forged X-Forwarded-For from a peer that is no trusted proxy is ignored
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=f"http://{gw.host}:{gw.port}", transport=transport, timeout=30) as other:
            codes = [(await login(other, f"n{i}", "pw-pw-pw", f"172.16.0.{i}")) for i in range(LOGIN_BURST + 1)]
        assert [x.status_code for x in codes[:LOGIN_BURST]] == [401] * LOGIN_BURST
        assert refused(codes[-1], "this address"), codes[-1].text
        used += LOGIN_BURST

        # per forwarded address, behind the trusted proxy
        for i in range(LOGIN_BURST):
            assert (await login(http, f"u{i}", "pw-pw-pw", "10.1.0.1")).status_code == 401
        assert refused(await login(http, "u9", "pw-pw-pw", "10.1.0.1"), "this address")
        assert (await login(http, "u9", "pw-pw-pw", "10.1.0.2")).status_code == 401
        used += LOGIN_BURST + 1

        # the global budget: from ever new addresses, until it is spent
        answers = [
            await login(http, "nobody", "pw-pw-pw", f"10.2.{i // 250}.{i % 250}")
            for i in range(LOGIN_GLOBAL - used + 1)
        ]
        assert [a.status_code for a in answers[:-1]] == [401] * (LOGIN_GLOBAL - used)
        assert refused(answers[-1], "logins"), answers[-1].text
        assert "this address" not in answers[-1].json()["detail"]

        # a burst of registrations: one hash at a time and two waiting; the rest 503 at once
        async def register(i: int) -> tuple[int, float, httpx.Response]:
            t0 = time.monotonic()
            body = {"username": f"b{uuid.uuid4().hex[:10]}", "password": PASSWORD}
            r = await http.post("/v1/auth/register", json=body, headers={"X-Forwarded-For": f"10.5.0.{i}"})
            return r.status_code, time.monotonic() - t0, r

        burst = await asyncio.gather(*(register(i) for i in range(20)))
        done = [t for code, t, _ in burst if code == 201]
        busy = [(t, r) for code, t, r in burst if code == 503]
        assert len(done) >= 3 and len(busy) >= 10, [code for code, _, _ in burst]
        assert all(r.json()["code"] == "unavailable" and r.headers.get("retry-after") for _, r in busy)
        assert max(t for t, _ in busy) < max(done), (busy, done)  # refused without waiting in line

        # a wrong bootstrap token
        r = await http.post(
            "/v1/auth/register",
            json={"username": "boss", "password": PASSWORD, "bootstrap_token": "guess"},
            headers={"X-Forwarded-For": "10.9.0.2"},
        )
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.text
