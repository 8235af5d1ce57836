"""End to end through real processes: register, converse over two gateways, history."""

from __future__ import annotations

from chat_devtools.testing import Backend, ClusterFactory
from helpers.chat_client import Api, Ws


async def test_two_gateways_exchange_messages(cluster: ClusterFactory, backend: Backend) -> None:
    c = cluster(gateways=2, backend=backend)
    async with Api(c.gateway_urls[0]) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        wa = await Ws.connect(c.ws_urls[0], alice.access_token)
        wb = await Ws.connect(c.ws_urls[1], bob.access_token)
        await wa.send({"type": "send", "ref": "r1", "conv": conv, "client_msg_id": "m1", "body": "  hi bob "})
        ack = await wa.expect("ack", ref="r1")
        ev = (await wb.expect("event"))["event"]
        assert ev["seq"] == ack["seq"] == 3 and ev["body"] == "hi bob" and ev["sender"] == alice.id
        hist = await api.all_events(bob, conv)
        assert [e["seq"] for e in hist] == [1, 2, 3]
        await wa.close()
        await wb.close()
