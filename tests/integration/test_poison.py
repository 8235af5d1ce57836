"""One bad command never holds back anyone else's (hardening §1), on both backends.

Twenty accounts send ``reply_to`` = 2^64 - 1 over WebSocket and REST in a loop (once that
value reached the write batch and made it raise: the whole batch, other users' messages
included, went back for redelivery, again and again), and malformed commands are
published straight into JetStream as a broken or outdated gateway would. Meanwhile alice
posts. Every attacker frame is refused at once with ``invalid``; every raw command is
answered ``invalid`` and terminated; every one of alice's messages is acked, and her
latency stays within a multiple of her latency on the idle system, measured first in the
same test.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx
import orjson
from chat_devtools.cluster import Cluster
from chat_devtools.testing import NO_RATE_LIMITS, Backend, ClusterFactory
from chat_proto.subjects import cmd_send, gateway_results
from helpers.chat_client import Api, User
from helpers.peer import Peer, users

HUGE = 2**64 - 1
ATTACKERS = 20
ROUNDS = 25  # per attacker: each round one WS and one REST attempt
RAW = 50  # commands published straight into JetStream
SAMPLES = 30
PACE_S = 0.02  # between an attacker's rounds: a steady stream, not a CPU benchmark of the gateway
FACTOR = 10  # allowed slow-down of alice's median latency while under attack


async def timed_sends(pa: Peer, conv: str, n: int, label: str) -> list[float]:
    took = []
    for i in range(n):
        t0 = time.monotonic()
        f = await pa.send_msg(conv, f"{label} {i}")
        assert f["type"] == "ack", f
        took.append(time.monotonic() - t0)
    return took


async def attacker(ws_url: str, http: httpx.AsyncClient, user: User, conv: str) -> list[str]:
    """Alternating WS and REST sends with an out-of-range ``reply_to``: the codes it got."""
    peer = await Peer.connect(ws_url, user)
    codes = []
    try:
        for i in range(ROUNDS):
            f = await peer.send_msg(conv, "boom", f"ws-{i}", reply_to=HUGE)
            codes.append(f["code"] if f["type"] == "error" else f["type"])
            r = await http.post(
                f"/v1/conversations/{conv}/messages",
                headers=user.headers,
                json={"client_msg_id": f"rest-{i}", "body": "boom", "reply_to": HUGE},
            )
            codes.append(r.json().get("code", str(r.status_code)) if r.status_code >= 400 else str(r.status_code))
            await asyncio.sleep(PACE_S)
    finally:
        await peer.close()
    return codes


async def raw_poison(c: Cluster, conv: str, sender: str) -> list[dict[str, Any]]:
    """Commands no gateway of this version sends, published into CHAT_CMDS directly with a
    gateway's credentials; the results the messages service answered on our own subject."""
    assert c.account is not None
    nc = await c.account.connect(c.nats_url, "gateway")
    inbox = gateway_results(f"poison{uuid.uuid4().hex[:8]}")
    got: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def on_result(msg: Any) -> None:
        got.extend(orjson.loads(msg.data)["results"])
        if len(got) >= RAW:
            done.set()

    await nc.subscribe(inbox, cb=on_result)
    js = nc.jetstream()
    for i in range(RAW):
        cmd = {
            "v": 1,
            "conv": conv,
            "sender": sender,
            "client_msg_id": f"raw-{i}",
            "body": "boom",
            "reply_to": HUGE,
            "reply_subject": inbox,
        }
        await js.publish(cmd_send(conv), orjson.dumps(cmd), headers={"Nats-Msg-Id": f"raw-{uuid.uuid4().hex}"})
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await nc.close()
    return got


async def test_poison_inside_a_busy_burst_holds_back_no_one(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=1, backend=backend, env=NO_RATE_LIMITS)
    async with Api(c.gateway_url) as api, httpx.AsyncClient(base_url=c.gateway_url, timeout=30) as http:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        evil = [await api.register_login(f"evil{i}") for i in range(ATTACKERS)]
        hall = (await api.create(evil[0], "channel", [u.id for u in evil[1:]], name="hall", private=True))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        idle = await timed_sends(pa, conv, SAMPLES, "idle")

        attack = [asyncio.create_task(attacker(c.ws_urls[0], http, u, hall)) for u in evil]
        raw = asyncio.create_task(raw_poison(c, hall, evil[0].id))
        await asyncio.sleep(0.2)
        busy = await timed_sends(pa, conv, SAMPLES, "busy")
        codes = [code for t in await asyncio.gather(*attack) for code in t]
        results = await raw
        # The baseline again after the attack: the machine's other load (other test
        # workers) may have changed meanwhile; the larger of the two medians is "normal".
        after = await timed_sends(pa, conv, SAMPLES, "after")

        assert codes == ["invalid"] * (2 * ROUNDS * ATTACKERS), set(codes)
        assert len(results) == RAW and all(not r["ok"] and r["error"]["code"] == "invalid" for r in results)
        hist = await api.all_events(alice, conv)
        assert [e["body"] for e in hist if e["kind"] == "message"] == [
            f"{label} {i}" for label in ("idle", "busy", "after") for i in range(SAMPLES)
        ]
        assert not [e for e in await api.all_events(evil[0], hall) if e["kind"] == "message"]
        await pa.close()
    m_idle, m_busy = max(statistics.median(idle), statistics.median(after)), statistics.median(busy)
    print(
        f"\n[{backend.name}] alice's send->ack median idle {m_idle * 1000:.1f} ms (before/after the attack "
        f"{statistics.median(idle) * 1000:.1f}/{statistics.median(after) * 1000:.1f}), under attack "
        f"{m_busy * 1000:.1f} ms (max {max(busy) * 1000:.0f} ms)"
    )
    assert m_busy <= FACTOR * m_idle, (idle, busy)
