"""Receipts (PROTOCOL §4) and message edits/deletes (§3) through real processes, two
gateways, both backends.

- bob reads on gateway 1: alice (gateway 0) and bob's other connection get ``receipt``
  frames; a lower ``read`` sends nothing; ``GET /v1/conversations`` and ``GET …/receipts``
  reflect it; a burst of ``delivered`` frames is coalesced into few receipts carrying the
  final value; ``POST …/receipts`` (our extension) works the same.
- Edit by the sender: an ``edit`` event live on both gateways and in history; someone
  else's → 403. Delete by an admin of a member's message: history shows ``body: null,
  deleted: true``, the edit's body gone too; a repeated delete → the same event.
- ``reply_to`` naming no message of the conversation → ``invalid`` over WS, 422 over REST.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from chat_devtools.testing import Backend, ClusterFactory
from helpers.chat_client import Api, User
from helpers.peer import Peer, users

Frame = dict[str, Any]


def receipts_of(peer: Peer, user: User) -> list[Frame]:
    return [f for f in peer.other if f.get("type") == "receipt" and f["user_id"] == user.id]


async def until(check: Any, within: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def settle(*peers: Peer) -> None:
    """Every earlier frame of these connections was handled (frames are handled in order),
    and anything it caused had time to arrive."""
    for p in peers:
        await p.call({"type": "ping", "ref": uuid.uuid4().hex})
    await asyncio.sleep(0.5)


async def my_view(api: Api, user: User, conv: str) -> Frame:
    r = await api.http.get("/v1/conversations", headers=user.headers)
    assert r.status_code == 200, r.text
    return next(c for c in r.json()["conversations"] if c["id"] == conv)


async def test_receipts_live_coalesced_and_listed(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]  # seqs 1, 2: member_joined
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        pb_other = await Peer.connect(c.ws_urls[0], bob)
        for i in range(60):
            assert (await api.send(alice, conv, f"m{i}")).status_code == 201  # seqs 3..62
        await pb.wait_for_seq(conv, 62)

        await pb.ws.send({"type": "read", "conv": conv, "seq": 7})
        want = {"type": "receipt", "conv": conv, "user_id": bob.id, "delivered_seq": 7, "read_seq": 7}
        for p in (pa, pb_other, pb):
            await until(lambda p=p: want in p.other)
        # a lower read (and delivered below it) changes nothing and sends nothing
        await pb.ws.send({"type": "read", "conv": conv, "seq": 5})
        await pb.ws.send({"type": "delivered", "conv": conv, "seq": 6})
        await settle(pb)
        assert receipts_of(pa, bob) == [want] and receipts_of(pb_other, bob) == [want]
        view = await my_view(api, bob, conv)
        assert (view["delivered_seq"], view["read_seq"], view["unread"]) == (7, 7, 55)
        r = await api.http.get(f"/v1/conversations/{conv}/receipts", headers=alice.headers)
        assert r.status_code == 200, r.text
        assert sorted(r.json()["receipts"], key=lambda x: x["user_id"] != bob.id)[0] == {
            "user_id": bob.id,
            "delivered_seq": 7,
            "read_seq": 7,
        }

        # a burst of 60 delivered frames, each higher: few receipts, the last with the final
        # value (clamped to last_seq)
        for seq in range(8, 68):
            await pb.ws.send({"type": "delivered", "conv": conv, "seq": seq})
        final = {**want, "delivered_seq": 62}
        await until(lambda: final in pa.other)
        await settle(pb)
        burst = receipts_of(pa, bob)[1:]
        assert burst[-1] == final and len(burst) <= 10, burst
        assert [f["delivered_seq"] for f in burst] == sorted(f["delivered_seq"] for f in burst)

        # REST extension, same rules: 204; the frame reaches the sockets too
        r = await api.http.post(f"/v1/conversations/{conv}/receipts", headers=bob.headers, json={"read_seq": 62})
        assert r.status_code == 204, r.text
        await until(lambda: {**want, "delivered_seq": 62, "read_seq": 62} in pa.other)
        r = await api.http.post(f"/v1/conversations/{conv}/receipts", headers=bob.headers, json={})
        assert r.status_code == 422 and r.json()["code"] == "invalid"
        assert (await my_view(api, bob, conv))["unread"] == 0

        # a non-member's receipts are ignored silently; REST tells them 404
        eve = await api.register_login("eve")
        pe = await Peer.connect(c.ws_urls[1], eve)
        await pe.ws.send({"type": "read", "conv": conv, "seq": 3})
        await settle(pe)
        assert pe.other == [] and all(f["user_id"] != eve.id for f in pa.other if f["type"] == "receipt")
        for method in ("get", "post"):
            r = await api.http.request(
                method.upper(),
                f"/v1/conversations/{conv}/receipts",
                headers=eve.headers,
                json={"read_seq": 1} if method == "post" else None,
            )
            assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
        for p in (pa, pb, pb_other, pe):
            await p.close()


async def test_edits_deletes_and_reply_to(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        conv = (await api.create(alice, "group", [bob, carol]))["id"]  # alice owner; seqs 1..3
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[1], bob)
        url = f"/v1/conversations/{conv}/messages"

        ack = await pb.send_msg(conv, "helo wrold")
        seq = ack["seq"]
        r = await api.http.patch(f"{url}/{seq}", headers=bob.headers, json={"body": "  hello world "})
        assert r.status_code == 200, r.text
        edit = r.json()
        assert (edit["kind"], edit["target"], edit["body"], edit["sender"]) == ("edit", seq, "hello world", bob.id)
        for p in (pa, pb):
            await p.wait_for_seq(conv, edit["seq"])
            assert [e for e in p.events if e["seq"] == edit["seq"]] == [edit]
        for who, code, status in ((alice, "forbidden", 403), (carol, "forbidden", 403)):
            r = await api.http.patch(f"{url}/{seq}", headers=who.headers, json={"body": "mine now"})
            assert (r.status_code, r.json()["code"]) == (status, code), r.text
        r = await api.http.patch(f"{url}/999", headers=bob.headers, json={"body": "x"})
        assert r.status_code == 404
        r = await api.http.patch(f"{url}/{seq}", headers=bob.headers, json={"body": "x" * 4001})
        assert r.status_code == 413 and r.json()["code"] == "too_large"

        # carol may not delete bob's message; alice (owner, admin+) may
        r = await api.http.delete(f"{url}/{seq}", headers=carol.headers)
        assert r.status_code == 403, r.text
        r = await api.http.delete(f"{url}/{seq}", headers=alice.headers)
        assert r.status_code == 200, r.text
        gone = r.json()
        assert (gone["kind"], gone["target"], gone["sender"]) == ("delete", seq, alice.id)
        await pb.wait_for_seq(conv, gone["seq"])
        events = {e["seq"]: e for e in await api.all_events(carol, conv)}
        assert events[seq]["kind"] == "message" and events[seq]["deleted"] is True
        assert events[seq]["body"] is None and events[seq]["attachments"] is None
        assert events[edit["seq"]]["body"] is None and events[edit["seq"]]["deleted"] is True
        assert "hello" not in str(events) and "wrold" not in str(events)
        # retry-safe: the same event, nothing new in the log
        r = await api.http.delete(f"{url}/{seq}", headers=alice.headers)
        assert r.status_code == 200 and r.json() == gone
        r = await api.http.get(f"/v1/conversations/{conv}", headers=alice.headers)
        assert r.json()["last_seq"] == gone["seq"]
        r = await api.http.patch(f"{url}/{seq}", headers=bob.headers, json={"body": "again"})
        assert r.status_code == 404

        # reply_to must name a message of this conversation (a deleted one still counts)
        err = await pb.send_msg(conv, "re", reply_to=999)
        assert err["type"] == "error" and err["code"] == "invalid", err
        r = await api.http.post(
            url, headers=bob.headers, json={"client_msg_id": uuid.uuid4().hex, "body": "re", "reply_to": 2}
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid", r.text
        r = await api.http.post(
            url, headers=bob.headers, json={"client_msg_id": uuid.uuid4().hex, "body": "re", "reply_to": seq}
        )
        assert r.status_code == 201 and r.json()["reply_to"] == seq, r.text
        for p in (pa, pb):
            await p.close()
