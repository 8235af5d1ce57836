"""Account state through real processes: the admin flag, deactivation (revocation over NATS to
every gateway), reactivation, and the user directory.

- the first registered user is admin (``/v1/me`` says so), the second is not;
- a non-admin gets 403 on the admin routes; unknown users 404;
- deactivating a user closes their WebSockets on BOTH gateways with 4001 within 5 s; their
  access token then gets 401 on REST on both gateways (and close 4001 on WS auth), refresh
  and login get 401, and the directory no longer lists them;
- after reactivation a new login works; the old tokens stay dead, also on a gateway started
  later (it loads recent revocations from auth at start-up).
"""

from __future__ import annotations

import asyncio
import time

import httpx
from chat_devtools.cluster import Cluster
from chat_devtools.testing import Backend, ClusterFactory
from helpers.chat_client import PASSWORD, Api, User, Ws

CLOSE_UNAUTHORIZED = 4001


def problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    return dict(body)


async def me(api: Api, user: User) -> httpx.Response:
    return await api.http.get("/v1/me", headers=user.headers)


async def directory(api: Api, user: User, **params: object) -> httpx.Response:
    return await api.http.get("/v1/users", headers=user.headers, params=params)


async def test_admin_flag_directory_and_deactivation(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend, fresh=True)  # the first user is the admin; adds a gateway
    async with Api(c.gateway_urls[0]) as api0, Api(c.gateway_urls[1]) as api1:
        root = await api0.register_login("root")
        alice = await api0.register_login("alice")
        r = await me(api0, root)
        assert r.status_code == 200 and r.json() == {
            "id": root.id,
            "username": root.username,
            "display_name": root.username,
            "admin": True,
        }
        r = await me(api1, alice)
        assert r.status_code == 200 and r.json()["admin"] is False

        # the directory: prefix, case-insensitive, bounded, validated
        r = await directory(api1, root, q="ALICE")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "users": [{"id": alice.id, "username": alice.username, "display_name": alice.username}],
            "next_cursor": None,
        }
        r = await directory(api0, alice, q="r", limit=1)
        assert [u["id"] for u in r.json()["users"]] == [root.id]
        for bad in ({}, {"q": ""}, {"q": "x" * 33}, {"q": "a", "limit": "many"}):
            problem(await directory(api0, alice, **bad), 422, "invalid")
        problem(await api0.http.get("/v1/users", params={"q": "a"}), 401, "unauthorized")

        # admin routes: 403 for a non-admin (even on themself), 404 for an unknown user
        for method, path, body in (
            ("POST", f"/v1/admin/users/{root.id}/deactivate", None),
            ("POST", f"/v1/admin/users/{alice.id}/reactivate", None),
            ("PUT", f"/v1/admin/users/{alice.id}/admin", {"admin": True}),
        ):
            problem(await api1.http.request(method, path, headers=alice.headers, json=body), 403, "forbidden")
        problem(await api0.http.post("/v1/admin/users/nobody123/deactivate", headers=root.headers), 404, "not_found")
        problem(await api0.http.post(f"/v1/admin/users/{root.id}/deactivate", headers=root.headers), 409, "conflict")
        r = await api0.http.put(f"/v1/admin/users/{root.id}/admin", headers=root.headers, json={"admin": False})
        problem(r, 409, "conflict")
        r = await api0.http.put(f"/v1/admin/users/{alice.id}/admin", headers=root.headers, json={"admin": "yes"})
        problem(r, 422, "invalid")

        await _deactivate_everywhere(c.ws_urls, api0, api1, root, alice)
        await _reactivate(c, api0, api1, root, alice)


async def _deactivate_everywhere(ws_urls: list[str], api0: Api, api1: Api, root: User, alice: User) -> None:
    sockets = [await Ws.connect(url, alice.access_token) for url in (ws_urls[0], ws_urls[0], ws_urls[1])]
    bystander = await Ws.connect(ws_urls[1], root.access_token)
    started = time.monotonic()
    r = await api0.http.post(f"/v1/admin/users/{alice.id}/deactivate", headers=root.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == alice.id and body["deactivated"] is True and body["deactivated_at"]
    codes = await asyncio.wait_for(asyncio.gather(*(ws.wait_closed(5) for ws in sockets)), 5)
    elapsed = time.monotonic() - started
    assert codes == [CLOSE_UNAUTHORIZED] * 3 and elapsed < 5, (codes, elapsed)
    await bystander.send({"type": "ping", "ref": "p"})
    assert (await bystander.expect("pong"))["ref"] == "p" and not bystander.closed.is_set()
    await bystander.close()

    for api in (api0, api1):
        problem(await me(api, alice), 401, "unauthorized")
        problem(await directory(api, alice, q="a"), 401, "unauthorized")
    late = await Ws.connect(ws_urls[1])
    await late.send({"type": "auth", "token": alice.access_token})
    assert await late.wait_closed(5) == CLOSE_UNAUTHORIZED
    problem(await api1.http.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token}), 401, "unauthorized")
    right = problem(
        await api1.http.post("/v1/auth/login", json={"username": alice.username, "password": PASSWORD}),
        401,
        "unauthorized",
    )
    wrong = problem(
        await api1.http.post("/v1/auth/login", json={"username": alice.username, "password": "wrong password"}),
        401,
        "unauthorized",
    )
    assert "deactivated" in str(right["detail"]) and "deactivated" not in str(wrong["detail"])
    r = await directory(api0, root, q="alice")
    assert r.status_code == 200 and r.json()["users"] == []


async def _reactivate(c: Cluster, api0: Api, api1: Api, root: User, alice: User) -> None:
    r = await api1.http.post(f"/v1/admin/users/{alice.id}/reactivate", headers=root.headers)
    assert r.status_code == 200 and r.json()["deactivated"] is False, r.text
    problem(await me(api0, alice), 401, "unauthorized")  # the old token stays dead
    r = await api0.http.post("/v1/auth/login", json={"username": alice.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    fresh = User(alice.id, alice.username, r.json()["access_token"], r.json()["refresh_token"])
    for api in (api0, api1):
        assert (await me(api, fresh)).status_code == 200
    # a gateway started now learns the revocation from auth: old token refused, new accepted
    gw = c.add_gateway()
    async with Api(gw.base_url) as api2:
        problem(await me(api2, alice), 401, "unauthorized")
        assert (await me(api2, fresh)).status_code == 200
        ws = await Ws.connect(f"ws://{gw.host}:{gw.port}/ws", fresh.access_token)
        await ws.close()
    r = await directory(api0, root, q="alice")
    assert [u["id"] for u in r.json()["users"]] == [alice.id]
