"""Consent and privacy (hardening §5) through the gateway: blocks, who may add you to
groups, hiding a dm; presence hidden from the blocked user."""

from __future__ import annotations

from chat_devtools.testing import ClusterFactory
from helpers.chat_client import Api
from helpers.peer import Peer, users


async def test_blocks_settings_and_hiding(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1)
    async with Api(c.gateway_url) as api:
        alice, bob, carol = await users(api, "alice", "bob", "carol")
        dm = (await api.create(bob, "dm", [alice]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)  # alice is online
        r = await api.http.get("/v1/presence", headers=bob.headers, params={"user_ids": alice.id})
        assert [p["user_id"] for p in r.json()["presence"]] == [alice.id]

        r = await api.http.post("/v1/me/blocks", headers=alice.headers, json={"user_id": bob.id})
        assert r.status_code == 204, r.text
        listed_blocks = (await api.http.get("/v1/me/blocks", headers=alice.headers)).json()["blocks"]
        assert [b["user_id"] for b in listed_blocks] == [bob.id]
        for bad, code in (({"user_id": alice.id}, 422), ({"user_id": "nosuchuser"}, 404), ({}, 422)):
            r = await api.http.post("/v1/me/blocks", headers=alice.headers, json=bad)
            assert r.status_code == code, (bad, r.text)

        # bob: no dm with her (not even the existing one), not adding her, no sends, no presence
        r = await api.http.post("/v1/conversations", headers=bob.headers, json={"kind": "dm", "members": [alice.id]})
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.text
        r = await api.http.post(
            "/v1/conversations", headers=bob.headers, json={"kind": "group", "members": [alice.id, carol.id]}
        )
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.text
        pb = await Peer.connect(c.ws_urls[0], bob)
        f = await pb.send_msg(dm, "hello?")
        assert (f["type"], f["code"]) == ("error", "forbidden"), f
        r = await api.http.get("/v1/presence", headers=bob.headers, params={"user_ids": alice.id})
        assert r.json()["presence"] == []
        assert (await pa.send_msg(dm, "I can still write"))["type"] == "ack"  # one-way

        # who may add alice to groups
        assert (await api.http.get("/v1/me/settings", headers=alice.headers)).json() == {"group_invites": "everyone"}
        r = await api.http.put("/v1/me/settings", headers=alice.headers, json={"group_invites": "shared"})
        assert r.status_code == 200 and r.json() == {"group_invites": "shared"}
        r = await api.http.put("/v1/me/settings", headers=alice.headers, json={"group_invites": "nobody"})
        assert r.status_code == 422
        r = await api.http.post(
            "/v1/conversations", headers=carol.headers, json={"kind": "group", "members": [alice.id, bob.id]}
        )
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.text  # carol shares nothing with her

        # a dm cannot be left, but hidden until its next event
        r = await api.http.delete(f"/v1/conversations/{dm}/members/{alice.id}", headers=alice.headers)
        assert r.status_code == 422
        assert (await api.http.post(f"/v1/conversations/{dm}/hide", headers=alice.headers)).status_code == 204
        listed = (await api.http.get("/v1/conversations", headers=alice.headers)).json()["conversations"]
        assert dm not in [x["id"] for x in listed]

        # unblocked: bob may write again, and the new event shows the dm to alice again
        r = await api.http.delete(f"/v1/me/blocks/{bob.id}", headers=alice.headers)
        assert r.status_code == 204
        assert (await pb.send_msg(dm, "hello again"))["type"] == "ack"
        listed = (await api.http.get("/v1/conversations", headers=alice.headers)).json()["conversations"]
        assert dm in [x["id"] for x in listed]
        await pa.close()
        await pb.close()
