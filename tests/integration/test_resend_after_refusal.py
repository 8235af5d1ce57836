"""A send the store refused may be retried with the same client_msg_id (PROTOCOL §4): the
retry is answered at once — refused again while the reason holds, stored once it is gone —
although JetStream's de-duplication window still holds the first attempt's id."""

from __future__ import annotations

import time

from chat_devtools.testing import ClusterFactory
from helpers.chat_client import Api
from helpers.peer import Peer, users

PROMPT_S = 4.0  # well under the gateway's 10 s send timeout


async def test_refused_send_retried_with_same_id_is_answered_promptly(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1)
    async with Api(c.gateway_urls[0]) as api:
        alice, gus = await users(api, "alice", "gus")
        conv = (await api.create(alice, "channel", name="quiet-room"))["id"]
        r = await api.http.post(
            f"/v1/conversations/{conv}/members", headers=alice.headers, json={"user_id": gus.id, "role": "guest"}
        )
        assert r.status_code == 200, r.text
        pg = await Peer.connect(c.ws_urls[0], gus)
        pa = await Peer.connect(c.ws_urls[0], alice)

        # A guest may not post; asking again with the same id gets the same answer, promptly.
        for _ in range(2):
            t0 = time.monotonic()
            f = await pg.send_msg(conv, "may I?", "g-1")
            assert (f["type"], f.get("code")) == ("error", "forbidden"), f
            assert time.monotonic() - t0 < PROMPT_S

        # Archived: refused; unarchived: the SAME id is stored, once.
        r = await api.http.post(f"/v1/conversations/{conv}/archive", headers=alice.headers)
        assert r.status_code == 200, r.text
        f = await pa.send_msg(conv, "hello?", "a-1")
        assert (f["type"], f.get("code")) == ("error", "forbidden"), f
        r = await api.http.post(f"/v1/conversations/{conv}/unarchive", headers=alice.headers)
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        ack = await pa.send_msg(conv, "hello!", "a-1")
        assert ack["type"] == "ack", ack
        assert time.monotonic() - t0 < PROMPT_S
        again = await pa.send_msg(conv, "hello!!", "a-1")
        assert (again["type"], again["seq"]) == ("ack", ack["seq"]), again
        stored = [e for e in await api.all_events(alice, conv) if e.get("client_msg_id") == "a-1"]
        assert [(e["seq"], e["body"]) for e in stored] == [(ack["seq"], "hello!")]
        for p in (pg, pa):
            await p.close()
