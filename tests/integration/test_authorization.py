"""Authorization through real processes (PROTOCOL §2, §4): non-members, IDOR, membership changes.

- dm, group, private channel: a non-member gets 404 (as for an unknown id), cannot send,
  cannot sync, and their open connection receives none of the conversation's events.
- public channel: a non-member may read (200) but not send (forbidden) and gets no live
  events until ``POST …/join``.
- a removed member receives their own ``member_left`` and then nothing more; an added
  member receives events from their own ``member_joined`` on (connections on two gateways).
- a client-supplied ``sender`` is ignored.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from chat_devtools.testing import ClusterFactory
from helpers.chat_client import Api, User
from helpers.peer import Peer, users


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["code"] == code, r.text


async def get_conv(api: Api, user: User, conv: str) -> httpx.Response:
    return await api.http.get(f"/v1/conversations/{conv}", headers=user.headers)


def refusal(f: dict[str, Any], code: str, conv: str, cmid: str) -> None:
    assert f["type"] == "error", f
    assert (f.get("code"), f.get("conv"), f.get("client_msg_id")) == (code, conv, cmid), f


async def test_non_member_of_private_conversations_sees_nothing(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, mallory = await users(api, "alice", "bob", "mallory")
        dm = (await api.create(alice, "dm", [bob]))["id"]
        group = (await api.create(alice, "group", [bob]))["id"]
        chan = (await api.create(alice, "channel", [bob], name="secret", private=True))["id"]
        mine = (await api.create(alice, "dm", [mallory]))["id"]
        foreign = [dm, group, chan]
        for conv in foreign:
            r = await api.send(alice, conv, "private words")
            assert r.status_code == 201, r.text
        before = {conv: await api.all_events(bob, conv) for conv in foreign}
        assert all(len(evs) == 3 for evs in before.values())

        # REST: 404 for the object, history (with and without paging) and sending,
        # exactly as for an id that does not exist
        for conv in [*foreign, uuid.uuid4().hex]:
            assert_problem(await get_conv(api, mallory, conv), 404, "not_found")
            assert_problem(await api.history(mallory, conv), 404, "not_found")
            assert_problem(await api.history(mallory, conv, after=0), 404, "not_found")
            assert_problem(await api.history(mallory, conv, before=100), 404, "not_found")
            assert_problem(await api.send(mallory, conv, "let me in"), 404, "not_found")
        r = await api.http.get("/v1/conversations", headers=mallory.headers)
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["conversations"]] == [mine]

        pm = await Peer.connect(c.ws_urls[1], mallory)
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        # WS send: error not_found, nothing stored
        for conv in foreign:
            f = await pm.send_msg(conv, "sneaky", "x-1")
            refusal(f, "not_found", conv, "x-1")
        # sync: foreign ids listed in not_found, nothing replayed
        done = await pm.call({"type": "sync", "ref": "s", "positions": {dm: 0, group: 0, chan: 1, mine: 2}})
        assert done == {
            "type": "sync_done",
            "ref": "s",
            "truncated": [],
            "not_found": [dm, group, chan],
        }
        assert pm.events == []

        # live: the members converse; mallory's connection gets none of it
        for i, conv in enumerate(foreign):
            assert (await pa.send_msg(conv, f"live a{i}"))["type"] == "ack"
            assert (await pb.send_msg(conv, f"live b{i}"))["type"] == "ack"
        for conv in foreign:
            await pa.wait_for_seq(conv, 5)
            await pb.wait_for_seq(conv, 5)
        marker = await pa.send_msg(mine, "marker for mallory")
        assert marker["type"] == "ack" and marker["seq"] == 3, marker
        await pm.wait_for_seq(mine, 3)
        assert [(e["conv"], e["seq"], e["body"]) for e in pm.events] == [(mine, 3, "marker for mallory")]
        assert pm.other == []
        # members' history: only their own messages were added
        for conv in foreign:
            after = await api.all_events(bob, conv)
            assert after[:3] == before[conv]
            assert [(e["sender"], e["body"]) for e in after[3:]] == [
                (alice.id, after[3]["body"]),
                (bob.id, after[4]["body"]),
            ]
            assert all(e["sender"] != mallory.id for e in after)
        for p in (pm, pa, pb):
            await p.close()


async def test_public_channel_non_member_reads_but_cannot_send_until_join(
    cluster: ClusterFactory,
) -> None:
    c = cluster(gateways=2)
    async with Api(c.gateway_urls[1]) as api:
        alice, bob, mallory = await users(api, "alice", "bob", "mallory")
        chan = (await api.create(alice, "channel", [bob], name="town square"))["id"]
        mine = (await api.create(alice, "dm", [mallory]))["id"]
        r = await api.send(alice, chan, "welcome")
        assert r.status_code == 201 and r.json()["seq"] == 3, r.text

        r = await get_conv(api, mallory, chan)
        assert r.status_code == 200, r.text
        obj = r.json()
        assert (obj["id"], obj["kind"], obj["private"]) == (chan, "channel", False)
        assert sorted(m["user_id"] for m in obj["members"]) == sorted([alice.id, bob.id])
        r = await api.history(mallory, chan)
        assert r.status_code == 200, r.text
        assert [e["seq"] for e in r.json()["events"]] == [1, 2, 3]
        assert r.json()["events"] == await api.all_events(alice, chan)
        # sending is refused (403 / forbidden) and stores nothing
        assert_problem(await api.send(mallory, chan, "hi all"), 403, "forbidden")
        pm = await Peer.connect(c.ws_urls[0], mallory)
        pa = await Peer.connect(c.ws_urls[1], alice)
        pb = await Peer.connect(c.ws_urls[0], bob)
        refusal(await pm.send_msg(chan, "hi all", "p-1"), "forbidden", chan, "p-1")
        # not a member: sync lists it in not_found
        done = await pm.call({"type": "sync", "ref": "s", "positions": {chan: 0}})
        assert done == {"type": "sync_done", "ref": "s", "truncated": [], "not_found": [chan]}
        # no live events before joining
        assert (await pa.send_msg(chan, "members only chatter"))["seq"] == 4
        await pb.wait_for_seq(chan, 4)
        assert (await pa.send_msg(mine, "marker"))["seq"] == 3
        await pm.wait_for_seq(mine, 3)
        assert [(e["conv"], e["seq"]) for e in pm.events] == [(mine, 3)]
        assert [e["seq"] for e in await api.all_events(alice, chan)] == [1, 2, 3, 4]

        # join: live events from the own member_joined on
        r = await api.http.post(f"/v1/conversations/{chan}/join", headers=mallory.headers)
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "member"
        await pm.wait_for_seq(chan, 5)
        joined = pm.events[-1]
        assert (joined["conv"], joined["seq"], joined["kind"], joined["user_id"]) == (
            chan,
            5,
            "member_joined",
            mallory.id,
        )
        assert (await pb.send_msg(chan, "hello newcomer"))["seq"] == 6
        await pm.wait_for_seq(chan, 6)
        # joining again: 200, no event — the next event mallory sees is alice's message
        r = await api.http.post(f"/v1/conversations/{chan}/join", headers=mallory.headers)
        assert r.status_code == 200, r.text
        ack = await pm.send_msg(chan, "thanks", "p-2")
        assert ack["type"] == "ack" and ack["seq"] == 7, ack
        await pm.wait_for_seq(chan, 7)
        assert [(e["conv"], e["seq"], e["kind"]) for e in pm.events] == [
            (mine, 3, "message"),
            (chan, 5, "member_joined"),
            (chan, 6, "message"),
            (chan, 7, "message"),
        ]
        assert [e["seq"] for e in await api.all_events(alice, chan)] == [1, 2, 3, 4, 5, 6, 7]
        for p in (pm, pa, pb):
            await p.close()


async def test_removed_member_gets_member_left_then_nothing(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        group = (await api.create(alice, "group", [bob, carol]))["id"]  # seqs 1..3
        dm = (await api.create(alice, "dm", [bob]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        pc = await Peer.connect(c.ws_urls[1], carol)
        pb0 = await Peer.connect(c.ws_urls[0], bob)
        pb1 = await Peer.connect(c.ws_urls[1], bob)
        assert (await pa.send_msg(group, "before"))["seq"] == 4
        r = await api.http.delete(f"/v1/conversations/{group}/members/{bob.id}", headers=alice.headers)
        assert r.status_code == 204, r.text
        for p in (pb0, pb1, pa, pc):
            await p.wait_for_seq(group, 5)
        for p in (pb0, pb1):
            assert [(e["seq"], e["kind"], e.get("user_id")) for e in p.events] == [
                (4, "message", None),
                (5, "member_left", bob.id),
            ]
        # the conversation goes on without bob
        assert (await pa.send_msg(group, "after 1"))["seq"] == 6
        assert (await pc.send_msg(group, "after 2"))["seq"] == 7
        await pa.wait_for_seq(group, 7)
        await pc.wait_for_seq(group, 7)
        marker = await pa.send_msg(dm, "marker for bob")
        assert marker["seq"] == 3
        for p in (pb0, pb1):
            await p.wait_for_seq(dm, 3)
            assert [(e["conv"], e["seq"]) for e in p.events] == [(group, 4), (group, 5), (dm, 3)]
            assert p.other == []
        # and he can no longer read, send or sync it (a group is private: 404)
        assert_problem(await api.history(bob, group), 404, "not_found")
        assert_problem(await get_conv(api, bob, group), 404, "not_found")
        refusal(await pb1.send_msg(group, "still here?", "b-1"), "not_found", group, "b-1")
        done = await pb0.call({"type": "sync", "ref": "s", "positions": {group: 4}})
        assert done == {"type": "sync_done", "ref": "s", "truncated": [], "not_found": [group]}
        assert [e["seq"] for e in await api.all_events(alice, group)] == [1, 2, 3, 4, 5, 6, 7]
        for p in (pa, pc, pb0, pb1):
            await p.close()


async def test_added_member_receives_from_own_member_joined(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    async with Api(c.gateway_urls[0]) as api:
        alice, carol, dave = await users(api, "alice", "carol", "dave")
        group = (await api.create(alice, "group", [carol]))["id"]  # seqs 1, 2
        # a channel only alice's gateway (gw0) serves: gw1 learns of it from dave's notice
        solo = (await api.create(alice, "channel", name="solo", private=True))["id"]  # seq 1
        pa = await Peer.connect(c.ws_urls[0], alice)
        pc = await Peer.connect(c.ws_urls[1], carol)
        pd0 = await Peer.connect(c.ws_urls[0], dave)
        pd1 = await Peer.connect(c.ws_urls[1], dave)
        assert (await pa.send_msg(group, "before dave"))["seq"] == 3
        assert (await pa.send_msg(solo, "before dave, solo"))["seq"] == 2
        await pc.wait_for_seq(group, 3)

        for conv, seq in ((group, 4), (solo, 3)):
            r = await api.http.post(
                f"/v1/conversations/{conv}/members",
                headers=alice.headers,
                json={"user_id": dave.id},
            )
            assert r.status_code == 200, r.text
            for p in (pd0, pd1):
                await p.wait_for_seq(conv, seq)
        assert (await pa.send_msg(group, "hi dave"))["seq"] == 5
        assert (await pc.send_msg(group, "hi from carol"))["seq"] == 6
        assert (await pa.send_msg(solo, "solo hi"))["seq"] == 4
        ack = await pd0.send_msg(group, "thanks")
        assert ack["type"] == "ack" and ack["seq"] == 7, ack
        for p in (pd0, pd1):
            await p.wait_for_seq(group, 7)
            await p.wait_for_seq(solo, 4)
            got = {
                conv: [(e["seq"], e["kind"], e.get("user_id"), e.get("body")) for e in p.events if e["conv"] == conv]
                for conv in (group, solo)
            }
            assert got[group] == [
                (4, "member_joined", dave.id, None),
                (5, "message", None, "hi dave"),
                (6, "message", None, "hi from carol"),
                (7, "message", None, "thanks"),
            ], got
            assert got[solo] == [
                (3, "member_joined", dave.id, None),
                (4, "message", None, "solo hi"),
            ], got
            assert len(p.events) == 6 and p.other == []
        for p in (pa, pc, pd0, pd1):
            await p.close()


async def test_client_supplied_sender_is_ignored(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pb = await Peer.connect(c.ws_urls[0], bob)
        pa = await Peer.connect(c.ws_urls[0], alice)
        ack = await pa.send_msg(conv, "it was bob", "s-1", sender=bob.id)
        assert ack["type"] == "ack" and ack["seq"] == 3, ack
        r = await api.http.post(
            f"/v1/conversations/{conv}/messages",
            headers=alice.headers,
            json={"client_msg_id": "s-2", "body": "bob again", "sender": bob.id},
        )
        assert r.status_code == 201, r.text
        assert r.json()["sender"] == alice.id
        await pb.wait_for_seq(conv, 4)
        assert [(e["seq"], e["sender"]) for e in pb.events] == [(3, alice.id), (4, alice.id)]
        hist = await api.all_events(bob, conv)
        assert [(e["seq"], e["sender"], e.get("body")) for e in hist[2:]] == [
            (3, alice.id, "it was bob"),
            (4, alice.id, "bob again"),
        ]
        # and the idempotency key is alice's: her replay of s-1 answers with the same event
        assert (await api.send(alice, conv, "x", "s-1")).json()["seq"] == 3
        assert (await api.send(bob, conv, "mine", "s-1")).status_code == 201
        for p in (pa, pb):
            await p.close()
