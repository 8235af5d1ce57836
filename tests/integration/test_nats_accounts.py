"""Nothing on the bus trusts an unauthenticated peer (hardening §4).

Every service connects as its own NATS user with production's permissions
(``chat_proto.nats_permissions``). With a gateway's credentials one cannot forge an event
or a revocation, subscribe to another service's requests or inboxes, or make oneself admin
(auth believes the ``Chat-User`` header, and only gateways may send it on admin ops; auth
still checks that user is an admin). Messages and presence may call only the internal ops
they need. Anonymous clients are refused. Two chat systems on one NATS server, each in its
own account, cannot see each other's subjects.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from chat_bus.rpc import RpcClient
from chat_devtools.cluster import Cluster
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.testing import ClusterFactory, NatsFactory
from chat_proto import subjects
from chat_proto.auth_api import UserRevoked
from helpers.chat_client import Api
from helpers.peer import Peer, users
from nats.aio.client import Client as NATS


class Errors:
    """What the server told one connection (permission violations arrive asynchronously)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._changed = asyncio.Event()

    async def on_error(self, exc: Exception) -> None:
        self.seen.append(str(exc).lower())
        self._changed.set()

    async def wait_for(self, fragment: str, within: float = 5) -> None:
        async def found() -> None:
            while not any(fragment.lower() in e for e in self.seen):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(found(), within)


async def connect_as(c: Cluster, service: str) -> tuple[NATS, Errors]:
    assert c.account is not None
    errors = Errors()
    return await c.account.connect(c.nats_url, service, error_cb=errors.on_error), errors


async def test_each_service_is_limited_to_its_subjects(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1)
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        pa = await Peer.connect(c.ws_urls[0], alice)
        pb = await Peer.connect(c.ws_urls[0], bob)
        gw, gw_errors = await connect_as(c, "gateway")
        try:
            # a forged event and a forged revocation: refused by the server, nobody sees them
            forged = {
                "conv": conv,
                "seq": 99,
                "kind": "message",
                "sender": bob.id,
                "ts": "2026-01-01T00:00:00.000Z",
                "body": "forged",
            }
            await gw.publish(subjects.evt_conv(conv), orjson.dumps(forged))
            await gw_errors.wait_for(f'publish to "{subjects.evt_conv(conv)}"')
            revoked = UserRevoked(user_id=bob.id, revoked_at="2099-01-01T00:00:00.000Z", reason="forged")
            await gw.publish(subjects.user_revoked(bob.id), revoked.model_dump_json().encode())
            await gw_errors.wait_for(f'publish to "{subjects.user_revoked(bob.id)}"')
            # another service's requests, another service's inbox, everything
            for subject in ("svc.messages.>", "svc.auth.login", "_INBOX_messages.>", ">"):
                await gw.subscribe(subject)
                await gw_errors.wait_for(f'subscription to "{subject}"')
            # admin ops: a gateway may carry them for its users, and auth checks the user
            rpc = RpcClient(gw, 5)
            with pytest.raises(Exception, match="admin only"):
                await rpc.call(subjects.auth_rpc("admin.set_admin"), {"user_id": bob.id, "admin": True}, user=bob.id)
        finally:
            await gw.close()
        # messages and presence may not make the user-facing calls that carry an identity
        for service, subject in (
            ("messages", subjects.auth_rpc("admin.set_admin")),
            ("presence", subjects.messages_rpc("conv.create")),
            ("presence", subjects.CMD_SEND_ALL.replace("*", conv)),
        ):
            nc, errors = await connect_as(c, service)
            try:
                await nc.publish(subject, b"{}", headers={"Chat-User": bob.id})
                await errors.wait_for(f'publish to "{subject}"')
            finally:
                await nc.close()
        # none of it reached anyone: the conversation still works, bob is still connected
        await asyncio.sleep(0.3)
        assert [e for e in pa.events + pb.events if e.get("body") == "forged"] == []
        assert (await pa.send_msg(conv, "still fine"))["type"] == "ack"
        await pb.wait_for_seq(conv, 3)
        assert (await api.http.get("/v1/me", headers=bob.headers)).json()["admin"] is False
        assert not pb.ws.closed.is_set()
        await pa.close()
        await pb.close()


async def test_anonymous_clients_and_wrong_passwords_are_refused(cluster: ClusterFactory) -> None:
    c = cluster(gateways=0)
    assert c.account is not None
    user = c.account.users["gateway"][0]
    for options in ({}, {"user": user, "password": "guess"}):
        nc = NATS()
        try:
            with pytest.raises(Exception, match="Authorization Violation"):
                await nc.connect(
                    c.nats_url, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=2, **options
                )
        finally:
            await nc.close()


async def test_two_systems_on_one_server_do_not_see_each_other(
    cluster: ClusterFactory, nats_factory: NatsFactory
) -> None:
    a_account, b_account = ChatAccount.generate("SYSA"), ChatAccount.generate("SYSB")
    server = nats_factory(accounts=[a_account])
    a = cluster(nats=server, account=a_account)
    server.add_account(b_account)  # added to the running server
    b = cluster(nats=server, account=b_account)
    spy, _ = await connect_as(b, "gateway")  # b's gateway credentials, listening everywhere it may
    seen: list[Any] = []

    async def note(msg: Any) -> None:
        seen.append(msg.subject)

    for subject in (subjects.EVT_CONV_ALL, subjects.EPH_CONV_ALL, subjects.USER_NOTIFY_ALL):
        await spy.subscribe(subject, cb=note)
    try:
        async with Api(a.gateway_url) as api:
            alice, bob = await users(api, "alice", "bob")
            conv = (await api.create(alice, "dm", [bob]))["id"]
            assert (await api.send(alice, conv, f"private {uuid.uuid4().hex}")).status_code == 201
        async with Api(b.gateway_url) as api_b:  # b works on its own
            carol, dave = await users(api_b, "carol", "dave")
            conv_b = (await api_b.create(carol, "dm", [dave]))["id"]
            assert (await api_b.send(carol, conv_b, "hello b")).status_code == 201
        await asyncio.sleep(0.3)
        assert seen and all(conv not in s for s in seen), seen  # b's own traffic only
        assert any(conv_b in s for s in seen)
    finally:
        await spy.close()
