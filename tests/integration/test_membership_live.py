"""Membership changes take effect live, on every gateway and every device (issue: "a removed
member stops receiving that conversation's events within 1 s on every gateway and every
device"), measured while the conversation is busy.

Each round: alice keeps posting; bob (three devices over two gateways) is removed. Every
device must get bob's own ``member_left`` promptly after the removal call, nothing of the
conversation after it, and, before it, every event since bob's ``member_joined`` without a
gap. Then bob is added back and every device receives from its ``member_joined`` on.

"Promptly" is the issue's 1 s where the machine allows it, and otherwise a multiple of how
long a message takes to reach every device on this machine, measured at the start of the
same test (the 1 s figure itself is asserted by ``bench/membership.py``). alice sends as
fast as the box goes, so the send budget is off: how many sends fit in it depends on the
machine's speed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from chat_devtools.testing import NO_RATE_LIMITS, Backend, ClusterFactory
from helpers.chat_client import Api, Ws
from helpers.peer import Peer, users

REMOVAL_BOUND_S = 1.0
# The bound on a machine slower than the one the figure was set on: this many times the
# idle delivery latency measured in the test.
BASELINE_FACTOR = 20


class TimedPeer(Peer):
    """A Peer that also notes when each event arrived."""

    def __init__(self, ws: Ws, user: Any) -> None:
        self.arrived: list[tuple[float, dict[str, Any]]] = []
        super().__init__(ws, user)

    async def _run(self) -> None:
        while True:
            f = await self.ws.frames.get()
            if f.get("type") == "event":
                self.arrived.append((time.monotonic(), f["event"]))
                self.events.append(f["event"])
                self._changed.set()
            else:
                self.other.append(f)

    async def wait_member_event(self, conv: str, kind: str, user_id: str, within: float = 10) -> float:
        deadline = time.monotonic() + within
        while True:
            for at, e in self.arrived:
                if e["conv"] == conv and e["kind"] == kind and e.get("user_id") == user_id:
                    return at
            self._changed.clear()
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} of {user_id} within {within}s"
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass


async def chatter(pa: Peer, conv: str, label: str, stop: asyncio.Event) -> int:
    """Post one message after another until ``stop``; returns how many were acked."""
    sent = 0
    while not stop.is_set():
        ack = await pa.send_msg(conv, f"{label} #{sent}")
        assert ack["type"] == "ack", ack
        sent += 1
    return sent


async def test_removal_reaches_every_device_within_1s_while_busy(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend, env=NO_RATE_LIMITS)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "channel", [bob], name="busy", private=True))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        latencies: list[float] = []
        baseline = 0.0
        for rnd in range(3):
            devices = [
                TimedPeer(await Ws.connect(url, bob.access_token), bob)
                for url in (c.ws_urls[0], c.ws_urls[1], c.ws_urls[1])
            ]
            if rnd == 0:  # idle: how long one event takes to reach all three devices here
                baseline = await idle_delivery(pa, devices, conv)
            else:  # bob is out; his new devices hear of the conversation from his join
                r = await api.http.post(
                    f"/v1/conversations/{conv}/members", headers=alice.headers, json={"user_id": bob.id}
                )
                assert r.status_code == 200, r.text
                for d in devices:
                    await d.wait_member_event(conv, "member_joined", bob.id)
            stop = asyncio.Event()
            task = asyncio.create_task(chatter(pa, conv, f"round {rnd}", stop))
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            r = await api.http.delete(f"/v1/conversations/{conv}/members/{bob.id}", headers=alice.headers)
            assert r.status_code == 204, r.text
            for d in devices:
                latencies.append(await d.wait_member_event(conv, "member_left", bob.id) - t0)
            await asyncio.sleep(0.5)  # alice goes on posting after bob left
            stop.set()
            assert await task > 5
            history = await api.all_events(alice, conv)
            left_seq = max(e["seq"] for e in history if e["kind"] == "member_left" and e.get("user_id") == bob.id)
            assert history[-1]["seq"] > left_seq  # the conversation went on without him
            for d in devices:
                seqs = [e["seq"] for e in d.events if e["conv"] == conv]
                assert seqs[-1] == left_seq, (rnd, seqs[-5:], left_seq)  # nothing after member_left
                assert seqs == list(range(seqs[0], left_seq + 1)), (rnd, seqs)  # and no gap before it
                await d.close()
        await pa.close()
    bound = max(REMOVAL_BOUND_S, BASELINE_FACTOR * baseline)
    print(
        f"member_left arrival after the removal call, s: {sorted(round(x, 3) for x in latencies)}; "
        f"idle delivery {baseline:.3f} s, bound {bound:.2f} s"
    )
    assert max(latencies) < bound, (latencies, baseline)


async def idle_delivery(pa: Peer, devices: list[TimedPeer], conv: str, samples: int = 5) -> float:
    """Median time from a send to its arrival on the last of ``devices``."""
    took = []
    for i in range(samples):
        t0 = time.monotonic()
        ack = await pa.send_msg(conv, f"idle #{i}")
        assert ack["type"] == "ack", ack
        for d in devices:
            await d.wait_for_seq(conv, ack["seq"])
        arrived = [next(at for at, e in d.arrived if e["conv"] == conv and e["seq"] == ack["seq"]) for d in devices]
        took.append(max(arrived) - t0)
    return statistics.median(took)
