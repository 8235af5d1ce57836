"""Overload is shed, not queued (hardening §6), against real processes with small bounds.

Two clients pipeline 150 sends each at once. The gateway admits at most
GATEWAY_CONNECTION_MAX_INFLIGHT_SENDS per connection and its (adaptive) per-gateway bound
waiting for the store; the rest are answered ``unavailable`` with ``retry_after_ms`` at
once, and the connection keeps being read. Retried with the same ``client_msg_id`` every
message ends up stored exactly once; everything acked is in history at its seq. (The
throughput and latency figures at 2x capacity are in ``bench/overload.py``.)
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from helpers.chat_client import Api
from helpers.peer import Peer, users

N = 150
ENV = {
    **NO_RATE_LIMITS,
    "GATEWAY_CONNECTION_MAX_INFLIGHT_SENDS": "8",
    "GATEWAY_SEND_MAX_INFLIGHT": "12",
    "GATEWAY_SEND_MIN_INFLIGHT": "4",
}


async def pipeline(peer: Peer, conv: str, tag: str) -> tuple[dict[str, dict[str, Any]], int]:
    """All N sends at once, then the refused ones again (same ids) until every one is acked.
    Returns the acks and how many refusals there were."""
    ids = [f"{tag}-{i}" for i in range(N)]
    acks: dict[str, dict[str, Any]] = {}
    refusals = 0
    todo = ids
    while todo:
        futs = [
            await peer.request(
                {
                    "type": "send",
                    "ref": f"{cmid}/{uuid.uuid4().hex[:6]}",
                    "conv": conv,
                    "client_msg_id": cmid,
                    "body": f"body {cmid}",
                }
            )
            for cmid in todo
        ]
        answers = await asyncio.wait_for(asyncio.gather(*futs), 60)
        again, wait_ms = [], 0
        for cmid, f in zip(todo, answers, strict=True):
            if f["type"] == "ack":
                acks[cmid] = f
                continue
            assert f["type"] == "error" and f["code"] == "unavailable" and f["retry_after_ms"] > 0, f
            assert f["client_msg_id"] == cmid and f["conv"] == conv
            refusals += 1
            wait_ms = max(wait_ms, f["retry_after_ms"])
            again.append(cmid)
        todo = again
        await asyncio.sleep(wait_ms / 1000)
    return acks, refusals


async def test_sends_past_the_bounds_are_refused_at_once_and_lose_nothing(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1, env=ENV)
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pa, pb = await Peer.connect(c.ws_urls[0], alice), await Peer.connect(c.ws_urls[0], bob)
        (acks_a, ref_a), (acks_b, ref_b) = await asyncio.gather(pipeline(pa, conv, "a"), pipeline(pb, conv, "b"))
        assert ref_a > 0 and ref_b > 0  # more was offered than admitted
        assert await pa.call({"type": "ping", "ref": "still-read"}) == {"type": "pong", "ref": "still-read"}
        history = [e for e in await api.all_events(alice, conv) if e["kind"] == "message"]
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(c.gateways[0].metrics_url + "/metrics")).text
        await pa.close()
        await pb.close()
    acks = {**acks_a, **acks_b}
    assert len(acks) == 2 * N
    by_cmid = {e["client_msg_id"]: e for e in history}
    assert len(history) == 2 * N == len(by_cmid)  # each stored exactly once
    assert all(by_cmid[cmid]["seq"] == a["seq"] for cmid, a in acks.items())
    refused = [line for line in metrics.splitlines() if line.startswith("chat_gateway_sends_refused_total{")]
    assert sum(float(line.split()[-1]) for line in refused) >= ref_a + ref_b, refused
    print(f"\n{2 * N} sends, {ref_a + ref_b} refusals before all were stored")
