"""Delivery guarantees through real processes (PROTOCOL §3, §4).

- 1,000 messages between two users on two gateways: exactly once per connection, gap-free
  increasing seqs, every ack carries its event's seq, history equals what was delivered.
- Idempotent sends: the key (sender, conv, client_msg_id) is shared by WS and REST.
- Reconnect + ``sync``: exactly the missed events, then ``sync_done``; >500 missed → truncated.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from chat_devtools.testing import NO_RATE_LIMITS, Backend, ClusterFactory
from helpers.chat_client import Api
from helpers.peer import Peer, pump, users


# --- 1,000 messages ------------------------------------------------------------------------
async def test_thousand_messages_two_gateways_exactly_once(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend, env=NO_RATE_LIMITS)  # 1,000 sends as fast as the box goes
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]  # seqs 1, 2: member_joined
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        n_each = 500
        run = uuid.uuid4().hex[:6]
        msgs = {
            alice.id: [(f"a{run}-{i}", f"from alice #{i}") for i in range(n_each)],
            bob.id: [(f"b{run}-{i}", f"from bob #{i}") for i in range(n_each)],
        }
        (acks_a, order_a, thr_a), (acks_b, order_b, thr_b) = await asyncio.wait_for(
            asyncio.gather(pump(pa, conv, msgs[alice.id]), pump(pb, conv, msgs[bob.id])), 180
        )
        total = 2 * n_each
        last = 2 + total
        await pa.wait_for_seq(conv, last, within=60)
        await pb.wait_for_seq(conv, last, within=60)
        # One more round trip on each connection: anything still queued (a duplicate) arrives first.
        # (alice's send budget may be spent: wait as told and retry the same client_msg_id)
        cmid = uuid.uuid4().hex
        for _ in range(10):
            marker = await pa.send_msg(conv, "marker", cmid)
            if marker.get("code") != "rate_limited":
                break
            await asyncio.sleep(marker["retry_after_ms"] / 1000)
        assert marker["type"] == "ack" and marker["seq"] == last + 1, marker
        await pa.wait_for_seq(conv, last + 1)
        await pb.wait_for_seq(conv, last + 1)

        sent_by = {cmid: (uid, body) for uid, lst in msgs.items() for cmid, body in lst}
        acks = {**acks_a, **acks_b}
        assert len(acks) == total
        for peer in (pa, pb):
            evs = peer.events
            seqs = [e["seq"] for e in evs]
            assert all(e["conv"] == conv for e in evs)
            # strictly increasing and gap-free over the messages range, each exactly once
            assert seqs == list(range(3, last + 2)), (
                peer.user.username,
                _seq_trouble(seqs, 3, last + 1),
            )
            msg_evs = evs[:-1]
            assert [e["kind"] for e in msg_evs] == ["message"] * total
            assert sorted(e["client_msg_id"] for e in msg_evs) == sorted(sent_by)
            for e in msg_evs:
                uid, body = sent_by[e["client_msg_id"]]
                assert (e["sender"], e["body"]) == (uid, body), e
                ack = acks[e["client_msg_id"]]
                # every send acked with the seq (and ts) of its event
                assert (ack["seq"], ack["ts"], ack["conv"], ack["client_msg_id"]) == (
                    e["seq"],
                    e["ts"],
                    conv,
                    e["client_msg_id"],
                ), (ack, e)
            assert peer.other == [], peer.other[:5]
        # Answers come in the order the frames were sent, and one connection's sends are
        # stored in that order (the server handles a connection's frames in order) — unless
        # the server rate-limited some, which the client then retried later.
        for lst, order, got, thr in (
            (msgs[alice.id], order_a, acks_a, thr_a),
            (msgs[bob.id], order_b, acks_b, thr_b),
        ):
            if thr:
                continue
            cmids = [m[0] for m in lst]
            assert order == cmids
            own = [got[m]["seq"] for m in cmids]
            assert own == sorted(own)
        # history paged with after= equals exactly what was delivered, on both connections
        for u in (alice, bob):
            hist = await api.all_events(u, conv)
            assert [e["seq"] for e in hist] == list(range(1, last + 2))
            assert [e["kind"] for e in hist[:2]] == ["member_joined", "member_joined"]
            assert hist[2:] == pa.events == pb.events
        await pa.close()
        await pb.close()


def _seq_trouble(seqs: list[int], lo: int, hi: int) -> dict[str, Any]:
    seen: dict[int, int] = {}
    for s in seqs:
        seen[s] = seen.get(s, 0) + 1
    return {
        "n": len(seqs),
        "dups": sorted(s for s, k in seen.items() if k > 1)[:20],
        "missing": sorted(set(range(lo, hi + 1)) - set(seen))[:20],
        "out_of_order": [(a, b) for a, b in itertools.pairwise(seqs) if b <= a][:20],
    }


# --- idempotency ---------------------------------------------------------------------------
async def test_ws_resend_same_client_msg_id_is_acked_with_first_seq(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)

        first = await pa.send_msg(conv, "hello", "m-1")
        assert first["type"] == "ack" and first["seq"] == 3, first
        await pb.wait_for_seq(conv, 3)
        # the same client_msg_id again, even with another body: the first seq, nothing new
        again = await pa.send_msg(conv, "hello again", "m-1")
        assert again["type"] == "ack", again
        assert (again["seq"], again["ts"], again["client_msg_id"], again["conv"]) == (
            3,
            first["ts"],
            "m-1",
            conv,
        )
        # resend through the other gateway (another connection of alice): same answer
        pa2 = await Peer.connect(c.ws_urls[1], alice)
        again2 = await pa2.send_msg(conv, "hello", "m-1")
        assert again2["type"] == "ack" and again2["seq"] == 3, again2
        later = await pa.send_msg(conv, "later", "m-2")
        assert later["type"] == "ack" and later["seq"] == 4, later
        await pb.wait_for_seq(conv, 4)
        await pa.wait_for_seq(conv, 4)
        # the next event the peer (and the sender's own connection) saw after #3 is "later"
        for p in (pa, pb):
            assert [(e["seq"], e["body"]) for e in p.events] == [(3, "hello"), (4, "later")]
        hist = await api.all_events(bob, conv)
        assert [(e["seq"], e.get("client_msg_id"), e.get("body")) for e in hist[2:]] == [
            (3, "m-1", "hello"),
            (4, "m-2", "later"),
        ]
        # the key includes the sender and the conversation: bob's "m-1" is a message of its own
        bobs = await pb.send_msg(conv, "bob's m-1", "m-1")
        assert bobs["type"] == "ack" and bobs["seq"] == 5, bobs
        other = (await api.create(alice, "group", [bob]))["id"]  # seqs 1, 2
        in_other = await pa.send_msg(other, "other conv", "m-1")
        assert in_other["type"] == "ack" and in_other["seq"] == 3 and in_other["conv"] == other, in_other
        for p in (pa, pb, pa2):
            await p.close()


async def test_rest_replay_and_ws_resend_share_the_key(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=1, backend=backend)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pb = await Peer.connect(c.ws_urls[0], bob)
        pa = await Peer.connect(c.ws_urls[0], alice)

        r1 = await api.send(alice, conv, "rest first", "r-1")
        assert r1.status_code == 201, r1.text
        ev = r1.json()
        assert (ev["seq"], ev["kind"], ev["sender"], ev["body"], ev["client_msg_id"]) == (
            3,
            "message",
            alice.id,
            "rest first",
            "r-1",
        )
        r2 = await api.send(alice, conv, "rest first", "r-1")
        assert r2.status_code == 200, r2.text
        assert r2.json() == ev
        r3 = await api.send(alice, conv, "a different body", "r-1")
        assert r3.status_code == 200, r3.text
        assert r3.json() == ev
        # REST first-send, then a WS resend of the same id: the same seq
        ws_again = await pa.send_msg(conv, "rest first", "r-1")
        assert ws_again["type"] == "ack" and (ws_again["seq"], ws_again["ts"]) == (3, ev["ts"]), ws_again
        # WS first-send, then a REST replay: 200 with that event
        w = await pa.send_msg(conv, "ws first", "w-1")
        assert w["type"] == "ack" and w["seq"] == 4, w
        r4 = await api.send(alice, conv, "ws first?", "w-1")
        assert r4.status_code == 200, r4.text
        assert (r4.json()["seq"], r4.json()["body"], r4.json()["ts"]) == (4, "ws first", w["ts"])
        # nothing was fanned out again: bob's next event after #4 is the marker
        m = await api.send(alice, conv, "marker", "mk")
        assert m.status_code == 201 and m.json()["seq"] == 5, m.text
        await pb.wait_for_seq(conv, 5)
        assert [(e["seq"], e["body"]) for e in pb.events] == [
            (3, "rest first"),
            (4, "ws first"),
            (5, "marker"),
        ]
        hist = await api.all_events(bob, conv)
        assert hist[2:] == pb.events
        assert pb.events[0] == ev
        await pa.close()
        await pb.close()


# --- reconnect and sync --------------------------------------------------------------------
async def test_reconnect_to_other_gateway_and_sync_gets_exactly_the_missed(
    cluster: ClusterFactory, backend: Backend
) -> None:
    c = cluster(gateways=2, backend=backend)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        for i in range(3):
            assert (await pa.send_msg(conv, f"before {i}"))["type"] == "ack"
        await pb.wait_for_seq(conv, 5)
        held = pb.events[-1]["seq"]
        assert held == 5
        await pb.close()

        missed = 30
        acks, _, _ = await pump(pa, conv, [(f"miss-{i}", f"missed {i}") for i in range(missed)], window=10)
        assert sorted(a["seq"] for a in acks.values()) == list(range(6, 6 + missed))

        pb2 = await Peer.connect(c.ws_urls[0], bob)  # the other gateway
        done = await pb2.call({"type": "sync", "ref": "s1", "positions": {conv: held}})
        assert done == {"type": "sync_done", "ref": "s1", "truncated": [], "not_found": []}
        # the replay frames precede sync_done on the connection: all are here already
        assert [e["seq"] for e in pb2.events] == list(range(held + 1, held + 1 + missed))
        assert [e["body"] for e in pb2.events] == [f"missed {i}" for i in range(missed)]
        assert all(e["conv"] == conv and e["sender"] == alice.id for e in pb2.events)
        hist = await api.all_events(bob, conv)
        assert pb2.events == hist[held:]
        # nothing else was queued: the next frame is the answer to a ping
        assert await pb2.call({"type": "ping", "ref": "p"}) == {"type": "pong", "ref": "p"}
        assert len(pb2.events) == missed and pb2.other == []
        # and live delivery continues right after the replayed range
        live = await pa.send_msg(conv, "live again")
        assert live["seq"] == held + missed + 1
        await pb2.wait_for_seq(conv, live["seq"])
        assert [e["seq"] for e in pb2.events[missed:]] == [live["seq"]]
        await pa.close()
        await pb2.close()


async def test_sync_more_than_500_missed_is_truncated(cluster: ClusterFactory, backend: Backend) -> None:
    # 520 sends of one user in a burst: over PROTOCOL's default send budget (250), and the
    # bodies are checked in send order, so the send limit is off here (0 = unlimited).
    c = cluster(gateways=1, backend=backend, env=NO_RATE_LIMITS)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        big = (await api.create(alice, "dm", [bob]))["id"]
        small = (await api.create(carol, "dm", [bob]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        pc = await Peer.connect(c.ws_urls[0], carol)
        # bob is offline; he held seq 2 of both
        n_big, n_small = 520, 7
        (acks_big, _, _), (acks_small, _, _) = await asyncio.gather(
            pump(pa, big, [(f"b{i}", f"big {i}") for i in range(n_big)]),
            pump(pc, small, [(f"s{i}", f"small {i}") for i in range(n_small)]),
        )
        assert len(acks_big) == n_big and len(acks_small) == n_small
        pb = await Peer.connect(c.ws_urls[0], bob)
        unknown = uuid.uuid4().hex
        done = await pb.call({"type": "sync", "ref": "s", "positions": {big: 2, small: 2, unknown: 0}}, within=30)
        assert done == {"type": "sync_done", "ref": "s", "truncated": [big], "not_found": [unknown]}
        got_big = [e for e in pb.events if e["conv"] == big]
        got_small = [e for e in pb.events if e["conv"] == small]
        assert len(pb.events) == 500 + n_small
        assert [e["seq"] for e in got_big] == list(range(3, 503))  # the first 500, ascending
        assert [e["body"] for e in got_big] == [f"big {i}" for i in range(500)]
        assert [e["seq"] for e in got_small] == list(range(3, 3 + n_small))
        # the client continues with GET …/messages?after=
        r = await api.history(bob, big, after=got_big[-1]["seq"], limit=200)
        assert r.status_code == 200, r.text
        rest = r.json()
        assert [e["seq"] for e in rest["events"]] == list(range(503, 3 + n_big))
        assert rest["has_more"] is False
        for p in (pa, pb, pc):
            await p.close()
