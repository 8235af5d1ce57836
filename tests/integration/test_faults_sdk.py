"""SIGKILL one of two gateways while 200 SDK clients send (issue "Delivery guarantees").

200 users in 20 groups of 10; each runs a `chat_sdk.ChatClient` given both gateway URLs
(half of them starting on each) and sends messages one after another. Once a third of all
messages are acked, gateway 0 is SIGKILLed; its clients reconnect to gateway 1 and carry
on. Afterwards, per group: every acked message is in history exactly once, at the seq its
`send()` returned, seqs gap-free; and each client's view (the events its app got from
`events()`) equals history from where it started, in order, without repeats.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import pytest
from chat_devtools.testing import ClusterFactory
from chat_sdk import ChatClient, ClientOptions
from helpers.chat_client import PASSWORD

pytestmark = pytest.mark.fault

USERS = 200
GROUP = 10
PER_CLIENT = 6


async def test_gateway_sigkilled_under_200_sdk_clients(cluster: ClusterFactory) -> None:
    c = cluster(gateways=2)
    urls = c.gateway_urls
    tag = uuid.uuid4().hex[:6]
    names = [f"sdk{tag}{i}" for i in range(USERS)]
    sem = asyncio.Semaphore(16)

    async def register(name: str) -> None:
        async with sem:
            await ChatClient.register(urls[1], name, PASSWORD)

    await asyncio.gather(*(register(n) for n in names))

    async def connect(i: int) -> ChatClient:
        async with sem:
            order = urls if i % 2 == 0 else list(reversed(urls))
            # A longer send deadline than the default 60 s: on a loaded 2-core box, 100
            # clients failing over at once with jittered backoff can take a while.
            opts = ClientOptions(send_deadline_s=150)
            return await ChatClient.connect(order, username=names[i], password=PASSWORD, options=opts)

    clients = list(await asyncio.gather(*(connect(i) for i in range(USERS))))
    groups: list[list[ChatClient]] = [clients[g : g + GROUP] for g in range(0, USERS, GROUP)]
    conv_of: dict[int, str] = {}
    for gi, members in enumerate(groups):
        conv = await members[0].create_conversation("group", members=[m.user_id for m in members[1:]])
        conv_of[gi] = conv.id
    await asyncio.sleep(1.0)  # every member's connection has its member_joined by now

    views: dict[int, list[tuple[str, int, str]]] = collections.defaultdict(list)

    async def consume(i: int, cl: ChatClient) -> None:
        async for ev in cl.events():
            seq = getattr(ev, "seq", None)
            if seq is not None:
                views[i].append((ev.conv, seq, ev.kind))

    readers = [asyncio.create_task(consume(i, cl)) for i, cl in enumerate(clients)]
    acked: dict[str, tuple[str, int]] = {}
    total = USERS * PER_CLIENT
    killed = asyncio.Event()

    async def sender(i: int, cl: ChatClient) -> None:
        conv = conv_of[i // GROUP]
        for k in range(PER_CLIENT):
            cmid = f"{i}-{k}"
            res = await cl.send(conv, f"message {cmid}", client_msg_id=cmid)
            acked[cmid] = (conv, res.seq)
            if len(acked) >= total // 3 and not killed.is_set():
                killed.set()
                code = await asyncio.to_thread(c.gateways[0].kill)
                assert code is not None and code != 0

    try:
        await asyncio.wait_for(asyncio.gather(*(sender(i, cl) for i, cl in enumerate(clients))), 240)
        assert killed.is_set() and len(acked) == total
        moved = sum(1 for cl in clients if cl.disconnects)
        assert moved >= USERS // 2 - 5, f"only {moved} clients saw the kill"
        await asyncio.sleep(3.0)  # the last deliveries and gap fills
        for gi, members in enumerate(groups):
            conv = conv_of[gi]
            history = await _history(members[0], conv)
            seqs = [e.seq for e in history]
            assert seqs == list(range(1, len(seqs) + 1)), f"group {gi}: gaps in history"
            msgs = [e for e in history if e.kind == "message"]
            stored = collections.Counter(e.client_msg_id for e in msgs)
            assert all(n == 1 for n in stored.values()), f"group {gi}: stored twice"
            mine = {k: v for k, v in acked.items() if v[0] == conv}
            assert {e.client_msg_id: (conv, e.seq) for e in msgs} == mine, f"group {gi}: history != acks"
            for m in members:
                i = clients.index(m)
                got = [(s, k) for cv, s, k in views[i] if cv == conv]
                assert got, f"client {i} got nothing"
                want = [(e.seq, e.kind) for e in history if e.seq >= got[0][0]]
                assert got == want, f"client {i} (group {gi}) view != history"
    finally:
        for r in readers:
            r.cancel()
        await asyncio.gather(*(cl.close() for cl in clients), return_exceptions=True)


async def _history(cl: ChatClient, conv: str) -> list[Any]:
    out: list[Any] = []
    after = 0
    while True:
        page = await cl.history(conv, after=after, limit=200)
        out += page.events
        if not page.has_more or not page.events:
            return out
        after = page.events[-1].seq
