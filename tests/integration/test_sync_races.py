"""sync and live delivery compose: each event at most once per connection, even when syncs
overlap or a conversation becomes live on the connection while its replay is in flight."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
from chat_devtools.testing import ClusterFactory
from helpers.chat_client import Api, Ws


async def _frames_until_pong(ws: Ws, ref: str) -> list[dict[str, Any]]:
    await ws.send({"type": "ping", "ref": ref})
    out = []
    while True:
        f = await ws.next(15)
        if f.get("type") == "pong" and f.get("ref") == ref:
            return out
        out.append(f)


async def test_overlapping_syncs_replay_each_event_once(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1)
    async with Api(c.gateway_url) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        for i in range(20):
            assert (await api.send(bob, conv, f"m{i}")).status_code == 201
        ws = await Ws.connect(c.ws_urls[0], alice.access_token)
        await ws.send({"type": "sync", "ref": "s1", "positions": {conv: 0}})
        await ws.send({"type": "sync", "ref": "s2", "positions": {conv: 0}})
        frames = await _frames_until_pong(ws, "p")
        await ws.close()
    seqs = [f["event"]["seq"] for f in frames if f["type"] == "event"]
    assert sorted(seqs) == list(range(1, 23)), seqs  # 2 member_joined + 20 messages
    assert [f["ref"] for f in frames if f["type"] == "sync_done"] == ["s1", "s2"]


async def test_join_then_sync_at_once_delivers_each_event_once(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        chan = (await api.create(alice, "channel", name=f"c{uuid.uuid4().hex[:6]}"))["id"]
        wa = await Ws.connect(c.ws_urls[0], alice.access_token)
        wb = await Ws.connect(c.ws_urls[1], bob.access_token)
        for i in range(10):
            await wa.send({"type": "send", "ref": f"a{i}", "conv": chan, "client_msg_id": f"a{i}", "body": f"a{i}"})
            await wa.expect("ack", ref=f"a{i}")
        r = await api.http.post(f"/v1/conversations/{chan}/join", headers=bob.headers)
        assert r.status_code == 200
        await wb.send({"type": "sync", "ref": "s", "positions": {chan: 0}})
        for i in range(5):  # live traffic while the replay is in flight
            await wa.send({"type": "send", "ref": f"b{i}", "conv": chan, "client_msg_id": f"b{i}", "body": f"b{i}"})
            await wa.expect("ack", ref=f"b{i}")
        last = (await api.history(alice, chan, limit=1)).json()["events"][-1]["seq"]
        frames: list[dict[str, Any]] = []
        while not any(f.get("type") == "event" and f["event"]["seq"] == last for f in frames):
            frames.append(await wb.next(15))
        frames += await _frames_until_pong(wb, "p")
        await wa.close()
        await wb.close()
    seqs = [f["event"]["seq"] for f in frames if f["type"] == "event" and f["event"]["conv"] == chan]
    dupes = [s for s, n in Counter(seqs).items() if n > 1]
    assert not dupes, f"delivered twice: {dupes}"
    assert set(seqs) == set(range(1, last + 1))


async def _rpc_count(base_url: str, subject: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(base_url + "/metrics")).text
    prefix = f'chat_rpc_requests_total{{outcome="ok",subject="{subject}"}} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def test_sync_of_a_thousand_conversations_is_a_few_calls(cluster: ClusterFactory) -> None:
    """Hardening §2: a ``sync`` listing 1,000 conversation ids used to cost 1,000 history
    calls; it is one batched call per 100 conversations, and a burst of such frames on one
    connection is handled one sync at a time, each answered in order."""
    c = cluster(gateways=1)
    async with Api(c.gateway_url) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        mine = [(await api.create(alice, "channel", [bob.id], name=f"s{i}", private=True))["id"] for i in range(30)]
        for conv in mine[:3]:
            assert (await api.send(bob, conv, "missed")).status_code == 201
        positions = {conv: 2 for conv in mine} | {f"nope{i}": 0 for i in range(970)}
        ws = await Ws.connect(c.ws_urls[0], alice.access_token)
        calls0 = await _rpc_count(c.messages[0].base_url, "svc.messages.sync")
        for i in range(5):
            await ws.send({"type": "sync", "ref": f"s{i}", "positions": positions})
        frames = await _frames_until_pong(ws, "p")
        calls = await _rpc_count(c.messages[0].base_url, "svc.messages.sync") - calls0
        await ws.close()
    done = [f for f in frames if f["type"] == "sync_done"]
    assert [f["ref"] for f in done] == [f"s{i}" for i in range(5)]
    assert all(f["truncated"] == [] and len(f["not_found"]) == 970 for f in done)
    replayed = [(f["event"]["conv"], f["event"]["seq"]) for f in frames if f["type"] == "event"]
    assert sorted(replayed) == sorted((conv, 3) for conv in mine[:3])  # each event once per connection
    assert calls == 5 * 10, calls  # 1,000 ids: ten calls of 100 per sync
