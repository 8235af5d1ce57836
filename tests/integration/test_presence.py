"""Presence and typing through real processes (PROTOCOL §4 `typing`/`presence`, §5 presence).

Short intervals (1 s gateway heartbeats, 1 s offline grace) keep the bounds quick to test:
- online at the first connection, offline after the last clean close, across two gateways
  and devices; a quick reconnect within the grace produces no offline/online pair; one frame
  per change per watching connection, however many conversations they share;
- SIGKILL of a gateway: its users go offline within 3 heartbeat intervals, a user who
  reconnected elsewhere first stays online with no frame;
- a presence-service crash and restart: no false offline, state rebuilt;
- watcher scoping: strangers get no frames, `GET /v1/presence` omits them; channels above
  the fanout limit push nothing but answer queries; two presence replicas answer alike;
- typing: relayed to the other members with `expires_in_ms`, not to the typist or
  non-members, guests refused, at most one a second per user and conversation, never stored.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from chat_devtools.testing import Backend, ClusterFactory
from helpers.chat_client import Api, User
from helpers.peer import Peer, users

INTERVAL = 1.0
GRACE = 1.0
FAST = {
    "GATEWAY_PRESENCE_INTERVAL_S": str(INTERVAL),
    "GATEWAY_PRESENCE_BATCH_S": "0.1",
    "PRESENCE_GATEWAY_INTERVAL_S": str(INTERVAL),
    "PRESENCE_OFFLINE_GRACE_S": str(GRACE),
    "PRESENCE_COALESCE_S": "0.1",
}


def presence_of(peer: Peer, user: User) -> list[dict[str, Any]]:
    return [f for f in peer.presence if f.get("user_id") == user.id]


async def wait_presence(peer: Peer, user: User, status: str, within: float = 5.0) -> dict[str, Any]:
    """The first presence frame about ``user`` with ``status`` (polling what arrived)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for f in presence_of(peer, user):
            if f["status"] == status:
                return f
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {status} frame about {user.username} within {within}s: {presence_of(peer, user)}")


async def get_presence(api: Api, caller: User, ids: list[str]) -> httpx.Response:
    return await api.http.get("/v1/presence", params={"user_ids": ",".join(ids)}, headers=caller.headers)


async def statuses(api: Api, caller: User, *who: User) -> dict[str, str]:
    r = await get_presence(api, caller, [u.id for u in who])
    assert r.status_code == 200, r.text
    return {e["user_id"]: e["status"] for e in r.json()["presence"]}


async def test_online_offline_across_gateways_devices_and_quick_reconnects(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2, env=FAST)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        await api.create(alice, "dm", [bob])
        await api.create(alice, "group", [bob, carol])  # alice shares two conversations with bob
        pa = await Peer.connect(c.ws_urls[0], alice)
        pc = await Peer.connect(c.ws_urls[1], carol)
        assert (await statuses(api, alice, bob)) == {bob.id: "offline"}
        r = await get_presence(api, alice, [bob.id])
        assert r.json()["presence"][0]["last_seen"] is None  # never seen

        started = time.monotonic()
        b1 = await Peer.connect(c.ws_urls[0], bob)
        online = await wait_presence(pa, bob, "online", within=3)
        assert time.monotonic() - started < 1.5
        await wait_presence(pc, bob, "online", within=3)  # a watcher on the other gateway
        assert isinstance(online["last_seen"], str) and online["last_seen"].endswith("Z")
        assert (await statuses(api, alice, bob)) == {bob.id: "online"}

        # quick reconnects (another gateway, then the same one), slower than a coalescing
        # round but within the grace: nothing
        await b1.close()
        await asyncio.sleep(0.4)
        b1 = await Peer.connect(c.ws_urls[1], bob)
        await b1.close()
        await asyncio.sleep(0.4)
        b1 = await Peer.connect(c.ws_urls[1], bob)
        # a second device on the other gateway; the first one leaves: still online
        b2 = await Peer.connect(c.ws_urls[0], bob)
        await b1.close()
        await asyncio.sleep(GRACE + 1.0)
        assert [f["status"] for f in presence_of(pa, bob)] == ["online"], presence_of(pa, bob)
        assert (await statuses(api, alice, bob)) == {bob.id: "online"}

        closed = time.monotonic()
        await b2.close()
        offline = await wait_presence(pa, bob, "offline", within=5)
        delay = time.monotonic() - closed
        assert delay < GRACE + 1.0, delay  # PROTOCOL: within heartbeat_s of the last clean close
        await wait_presence(pc, bob, "offline", within=3)
        r = await get_presence(api, alice, [bob.id])
        assert r.json()["presence"] == [{"user_id": bob.id, "status": "offline", "last_seen": offline["last_seen"]}]
        # one frame per change per connection, though alice shares two conversations with bob
        assert [f["status"] for f in presence_of(pa, bob)] == ["online", "offline"]
        assert [f["status"] for f in presence_of(pc, bob)] == ["online", "offline"]
        # bob's own connections never hear about bob
        assert not presence_of(b2, bob)
        for p in (pa, pc, b1, b2):
            await p.close()


async def test_gateway_sigkill_offline_within_three_intervals(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2, env=FAST, fresh=True)  # kills a gateway
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        await api.create(alice, "dm", [bob])
        await api.create(alice, "dm", [carol])
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        pc = await Peer.connect(c.ws_urls[1], carol)
        await wait_presence(pa, bob, "online")
        await wait_presence(pa, carol, "online")
        await asyncio.sleep(INTERVAL * 1.5)  # gateway-1 has sent full reports

        killed = time.monotonic()
        c.gateways[1].kill()
        pc2 = await Peer.connect(c.ws_urls[0], carol)  # carol reconnects elsewhere at once
        await wait_presence(pa, bob, "offline", within=3 * INTERVAL + 3)
        delay = time.monotonic() - killed
        print(f"offline detected {delay:.2f}s after SIGKILL (interval {INTERVAL}s)")
        assert delay <= 3 * INTERVAL, delay
        await asyncio.sleep(GRACE + 0.5)
        assert [f["status"] for f in presence_of(pa, carol)] == ["online"]
        assert (await statuses(api, alice, bob, carol)) == {bob.id: "offline", carol.id: "online"}
        for p in (pa, pb, pc, pc2):
            await p.close()


async def test_presence_restart_has_no_false_offline(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, env=FAST, backend=backend, fresh=True)  # durable last_seen on SQLite and PostgreSQL
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        await api.create(alice, "group", [bob, carol])
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        pc = await Peer.connect(c.ws_urls[0], carol)
        await wait_presence(pa, bob, "online")
        await wait_presence(pa, carol, "online")
        before = len(pa.presence)

        c.presence[0].kill()
        c.presence[0].start()
        # Answered at once, from the first heartbeats and the durable store
        assert (await statuses(api, alice, bob, carol)) == {bob.id: "online", carol.id: "online"}
        await asyncio.sleep(1.2 * INTERVAL + 0.5 + 3 * INTERVAL)  # warm-up, then some rounds
        after = list(pa.presence)
        assert len(after) == before, after[before:]  # no offline burst, no redundant online
        assert (await statuses(api, alice, bob, carol)) == {bob.id: "online", carol.id: "online"}

        await pb.close()  # the rebuilt state still works
        await wait_presence(pa, bob, "offline", within=GRACE + 3)
        assert [f["status"] for f in presence_of(pa, carol)] == ["online"]
        for p in (pa, pc):
            await p.close()


async def test_watchers_only_and_queries_scoped(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1, presence_replicas=2, env={**FAST, "PRESENCE_MAX_FANOUT_MEMBERS": "3"})
    async with Api(c.gateway_url) as api:
        alice, bob, dan, eve, fay, gus = await users(api, "alice", "bob", "dan", "eve", "fay", "gus")
        await api.create(alice, "dm", [bob])
        await api.create(alice, "channel", [dan, fay, gus], name=f"big-{uuid.uuid4().hex[:8]}")  # 4 > 3
        pa = await Peer.connect(c.ws_urls[0], alice)
        pe = await Peer.connect(c.ws_urls[0], eve)  # a stranger: shares nothing with anyone
        pd = await Peer.connect(c.ws_urls[0], dan)  # shares only the big channel with alice
        pb = await Peer.connect(c.ws_urls[0], bob)
        await wait_presence(pa, bob, "online")
        await asyncio.sleep(GRACE)
        # two replicas published it; the connection got it once
        assert [f["status"] for f in presence_of(pa, bob)] == ["online"]
        assert not pe.presence + pd.presence
        # the big channel pushes nothing, but alice may ask about dan
        assert not presence_of(pa, dan)
        assert (await statuses(api, alice, dan)) == {dan.id: "online"}

        # scoping: the stranger learns nothing (not even existence); the caller always counts
        assert (await statuses(api, eve, bob, alice, dan, eve)) == {eve.id: "online"}
        ids = [bob.id, eve.id, "nobody", "not.an.id", dan.id, alice.id, bob.id]
        answers = [await get_presence(api, alice, ids) for _ in range(6)]  # both replicas answer
        views = [[(e["user_id"], e["status"]) for e in r.json()["presence"]] for r in answers]
        assert views[0] == [(bob.id, "online"), (dan.id, "online"), (alice.id, "online")]
        assert all(v == views[0] for v in views), views

        await pb.close()
        await wait_presence(pa, bob, "offline", within=GRACE + 3)
        await asyncio.sleep(0.5)
        offline = [await get_presence(api, alice, [bob.id]) for _ in range(4)]
        assert len({r.text for r in offline}) == 1 and offline[0].json()["presence"][0]["status"] == "offline"
        assert not pe.presence + pd.presence

        for params in ({}, {"user_ids": ""}, {"user_ids": ",".join(f"u{i}" for i in range(101))}):
            r = await api.http.get("/v1/presence", params=params, headers=alice.headers)
            assert r.status_code == 422 and r.json()["code"] == "invalid", (params, r.text)
        r = await api.http.get("/v1/presence", params={"user_ids": bob.id})
        assert r.status_code == 401
        for p in (pa, pe, pd):
            await p.close()


async def test_typing_relay_roles_rate_and_nothing_stored(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2, env=FAST)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, gina, eve = await users(api, "alice", "bob", "gina", "eve")
        conv = (await api.create(alice, "channel", [bob], name=f"t-{uuid.uuid4().hex[:8]}", private=True))["id"]
        r = await api.http.post(
            f"/v1/conversations/{conv}/members", json={"user_id": gina.id, "role": "guest"}, headers=alice.headers
        )
        assert r.status_code == 200, r.text
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        pg = await Peer.connect(c.ws_urls[0], gina)
        pe = await Peer.connect(c.ws_urls[1], eve)

        def typing(p: Peer, who: User) -> list[dict[str, Any]]:
            return [f for f in p.other if f.get("type") == "typing" and f.get("user_id") == who.id]

        await pa.ws.send({"type": "typing", "conv": conv, "ref": "t1"})
        await _until(lambda: typing(pb, alice) and typing(pg, alice))
        assert typing(pb, alice) == [{"type": "typing", "conv": conv, "user_id": alice.id, "expires_in_ms": 5000}]
        err = await pg.call({"type": "typing", "conv": conv, "ref": "g1"})  # a guest
        assert err["type"] == "error" and err["code"] == "forbidden" and err["conv"] == conv, err
        err = await pe.call({"type": "typing", "conv": conv, "ref": "e1"})  # not a member
        assert err["type"] == "error" and err["code"] == "not_found" and err["conv"] == conv, err

        # a role change reaches the gateway with its event: gina may type now
        r = await api.http.put(
            f"/v1/conversations/{conv}/members/{gina.id}/role", json={"role": "member"}, headers=alice.headers
        )
        assert r.status_code == 200, r.text
        await _until(lambda: any(e.get("kind") == "role_changed" for e in pg.events))
        await pg.ws.send({"type": "typing", "conv": conv})
        await _until(lambda: typing(pb, gina))

        # a flood from alice: at most one a second is relayed
        await asyncio.sleep(1.1)
        before = len(typing(pb, alice))
        flood_started = time.monotonic()
        for _ in range(25):
            await pa.ws.send({"type": "typing", "conv": conv})
            await asyncio.sleep(0.08)
        await asyncio.sleep(0.3)
        relayed = len(typing(pb, alice)) - before
        allowed = int(time.monotonic() - flood_started) + 1
        assert 1 <= relayed <= allowed, (relayed, allowed)
        assert not typing(pa, alice) and not [f for f in pe.other if f.get("type") == "typing"]
        assert not [e for e in await api.all_events(alice, conv) if e["kind"] not in ("member_joined", "role_changed")]
        for p in (pa, pb, pg, pe):
            await p.close()


async def _until(cond: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
