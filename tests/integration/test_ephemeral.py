"""Ephemeral frames (chat_proto.ephemeral) published on a conversation's ephemeral subject
reach the local members' connections on every gateway: receipts to all members, typing to
the others only; never to non-members."""

from __future__ import annotations

import asyncio

from chat_devtools.testing import ClusterFactory
from chat_proto import ephemeral, subjects
from helpers.chat_client import Api
from helpers.peer import Peer, users


async def test_ephemeral_frames_fan_out_to_members_only(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, eve = await users(api, "alice", "bob", "eve")
        conv = (await api.create(alice, "group", [bob, eve]))["id"]
        other = (await api.create(alice, "dm", [bob]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        pe = await Peer.connect(c.ws_urls[1], eve)
        assert c.account is not None
        nc = await c.account.connect(c.nats_url, "messages")  # who publishes receipt frames
        try:
            typing = ephemeral.TypingOut(conv=conv, user_id=alice.id)
            receipt = ephemeral.ReceiptFrame(conv=conv, user_id=bob.id, delivered_seq=3, read_seq=2)
            await nc.publish(subjects.eph_conv(conv), ephemeral.encode(typing))
            await nc.publish(subjects.eph_conv(conv), ephemeral.encode(receipt))
            # eve is no member of the dm: its ephemeral frames never reach her
            dm_typing = ephemeral.TypingOut(conv=other, user_id=bob.id)
            await nc.publish(subjects.eph_conv(other), ephemeral.encode(dm_typing))
            await nc.publish(subjects.eph_conv(conv), b'{"type":"event","event":{}}')  # not relayed
            await nc.flush()
            await asyncio.sleep(0.5)
        finally:
            await nc.close()
        got = {
            name: [(f["type"], f["conv"], f["user_id"]) for f in p.other if f["type"] != "presence"]
            for name, p in (("a", pa), ("b", pb), ("e", pe))
        }
        assert got["a"] == [("receipt", conv, bob.id), ("typing", other, bob.id)], got
        assert got["b"] == [("typing", conv, alice.id), ("receipt", conv, bob.id)], got
        assert got["e"] == [("typing", conv, alice.id), ("receipt", conv, bob.id)], got
        pb_other = [f for f in pb.other if f["type"] != "presence"]  # presence frames: test_presence.py
        assert pb_other[0]["expires_in_ms"] == 5000 and pb_other[1]["read_seq"] == 2
        for p in (pa, pb, pe):
            assert p.events == [] or all(e["conv"] in (conv, other) for e in p.events)
            await p.close()
