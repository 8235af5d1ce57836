"""Search through real processes (PROTOCOL §5 search), on SQLite FTS5 and on a real OpenSearch:
indexed from the event stream, only the caller's conversations, edits and deletes reflected,
bad text refused with 422 (never 500), cursor paging without duplicates; the SDK and the CLI.
(The storage layer's own suite runs on both too: services/search/tests.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from chat_devtools.tcp_proxy import TcpProxy
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from chat_sdk import ChatClient, SearchPage
from helpers.chat_client import Api, User
from helpers.peer import users

PASSWORD = "search-tests-password-1"
INDEX = f"chat-it-{uuid.uuid4().hex[:8]}"  # this module's own index on the shared node


@pytest.fixture(params=["fts", "opensearch"])
def search_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "fts":
        return dict(NO_RATE_LIMITS)
    server = request.getfixturevalue("opensearch_server")
    return {
        **NO_RATE_LIMITS,
        "SEARCH_BACKEND": "opensearch",
        "SEARCH_OPENSEARCH_URL": server.url,
        "SEARCH_INDEX_PREFIX": INDEX,
    }


async def search(api: Api, user: User, **params: Any) -> Any:
    return await api.http.get("/v1/search", params=params, headers=user.headers)


async def found(api: Api, user: User, q: str, want: int, within: float = 10.0, **params: Any) -> list[dict[str, Any]]:
    """The hits for ``q`` once there are ``want`` of them (indexing is asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        r = await search(api, user, q=q, **params)
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        if len(hits) == want or time.monotonic() > deadline:
            return hits
        await asyncio.sleep(0.1)


async def post(api: Api, user: User, conv: str, body: str) -> dict[str, Any]:
    r = await api.http.post(
        f"/v1/conversations/{conv}/messages",
        headers=user.headers,
        json={"client_msg_id": uuid.uuid4().hex, "body": body},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_search_finds_only_the_callers_conversations_and_follows_edits(
    cluster: ClusterFactory, search_env: dict[str, str]
) -> None:
    c = cluster(env=search_env)
    tag = uuid.uuid4().hex[:8]  # words unique to this test (the cluster is shared)
    async with Api(c.gateway_url) as api:
        alice, bob, eve = await users(api, "alice", "bob", "eve")
        ab = (await api.create(alice, "dm", [bob]))["id"]
        ae = (await api.create(alice, "dm", [eve]))["id"]
        m1 = await post(api, alice, ab, f"budget{tag} meeting tomorrow")
        await post(api, alice, ae, f"budget{tag} secret plans")
        await post(api, bob, ab, f"我们明天去北京开会 {tag}")

        hits = await found(api, bob, f"budget{tag}", 1)
        assert [(h["event"]["conv"], h["event"]["seq"]) for h in hits] == [(ab, m1["seq"])]
        assert hits[0]["event"]["kind"] == "message" and "<mark>" in hits[0]["highlight"]
        assert len(await found(api, alice, f"budget{tag}", 2)) == 2  # both of alice's
        assert len(await found(api, eve, f"budget{tag}", 1)) == 1  # only hers
        assert (await found(api, bob, "北京", 1, conv=ab))[0]["event"]["body"].startswith("我们")
        # narrowing to a conversation that is not the caller's: nothing, not an error
        r = await search(api, bob, q=f"budget{tag}", conv=ae)
        assert r.status_code == 200 and r.json()["hits"] == []
        # injection strings stay text (or are refused), never someone else's messages
        for q in ("*", "conv:*", "_exists_:body", "/.*/", f"budget{tag} OR secret", "(" * 1000):
            r = await search(api, bob, q=q)
            assert r.status_code in (200, 422), (q, r.status_code, r.text)
            if r.status_code == 200:
                assert all(h["event"]["conv"] == ab for h in r.json()["hits"]), q
            else:
                assert r.json()["code"] == "invalid"
        assert (await search(api, bob, q="x" * 5000)).status_code == 422
        assert (await search(api, bob, q="x", cursor="not-a-cursor")).status_code == 422
        assert (await search(api, bob, q="x", limit=10**30)).status_code == 422
        assert (await api.http.get("/v1/search", params={"q": "x"})).status_code == 401

        # an edit: the new text is found, the old one is not; the hit's body is the new text
        r = await api.http.patch(
            f"/v1/conversations/{ab}/messages/{m1['seq']}", headers=alice.headers, json={"body": f"agenda{tag} moved"}
        )
        assert r.status_code == 200, r.text
        hits = await found(api, bob, f"agenda{tag}", 1)
        assert hits[0]["event"]["seq"] == m1["seq"] and hits[0]["event"]["body"] == f"agenda{tag} moved"
        assert await found(api, bob, f"budget{tag}", 0) == []
        # a delete: gone
        r = await api.http.delete(f"/v1/conversations/{ab}/messages/{m1['seq']}", headers=alice.headers)
        assert r.status_code == 200, r.text
        assert await found(api, bob, f"agenda{tag}", 0) == []


async def test_paging_returns_every_hit_once(cluster: ClusterFactory, search_env: dict[str, str]) -> None:
    c = cluster(env=search_env)
    tag = uuid.uuid4().hex[:8]
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "group", [bob]))["id"]
        sent = [await post(api, alice, conv, f"report{tag} number {i}") for i in range(45)]
        assert len(await found(api, bob, f"report{tag}", 45, limit=100)) == 45  # all indexed
        seen: list[int] = []
        cursor = None
        for _ in range(10):
            params: dict[str, Any] = {"q": f"report{tag}", "limit": 20}
            if cursor:
                params["cursor"] = cursor
            r = await search(api, bob, **params)
            assert r.status_code == 200, r.text
            seen += [h["event"]["seq"] for h in r.json()["hits"]]
            cursor = r.json()["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(m["seq"] for m in sent) and len(seen) == len(set(seen))


async def test_sdk_and_cli_search(cluster: ClusterFactory, tmp_path: Path) -> None:
    c = cluster(env=NO_RATE_LIMITS)
    tag = uuid.uuid4().hex[:8]
    name = f"sdk{uuid.uuid4().hex[:8]}"
    await ChatClient.register(c.gateway_urls, name, PASSWORD)
    client = await ChatClient.connect(c.gateway_urls, username=name, password=PASSWORD)
    try:
        conv = await client.create_conversation("channel", name=f"s{tag}")
        sent = await client.send(conv.id, f"launch{tag} checklist")
        deadline = time.monotonic() + 10
        page = await client.search(f"launch{tag}")
        for _ in range(100):  # indexing is asynchronous
            if page.hits or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
            page = await client.search(f"launch{tag}")
        assert isinstance(page, SearchPage) and [h.event.seq for h in page.hits] == [sent.seq]
        assert page.hits[0].event.body == f"launch{tag} checklist" and "<mark>" in page.hits[0].highlight
    finally:
        await client.close()
    env = {**os.environ, "CHAT_CONFIG_DIR": str(tmp_path / "cfg"), "CHAT_PASSWORD": PASSWORD}
    exe = str(Path(sys.executable).with_name("chat"))

    def chat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60, check=False)

    p = await asyncio.to_thread(chat, "login", c.gateway_url, name)
    assert p.returncode == 0, p.stderr
    p = await asyncio.to_thread(chat, "search", f"launch{tag}", "--json")
    assert p.returncode == 0, p.stderr
    (hit,) = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert hit["event"]["seq"] == sent.seq


async def test_opensearch_down_and_back(cluster: ClusterFactory, opensearch_server: Any) -> None:
    """OpenSearch cut off (a TCP proxy between search and it): chat is unaffected, search
    answers 503, and what was sent meanwhile is searchable once it is back."""
    proxy = TcpProxy("127.0.0.1", opensearch_server.port).start()
    try:
        env = {
            **NO_RATE_LIMITS,
            "SEARCH_BACKEND": "opensearch",
            "SEARCH_OPENSEARCH_URL": proxy.url,
            "SEARCH_INDEX_PREFIX": f"chat-cut-{uuid.uuid4().hex[:8]}",  # no pattern overlap with INDEX
        }
        c = cluster(env=env, fresh=True)  # its own proxy
        tag = uuid.uuid4().hex[:8]
        async with Api(c.gateway_url) as api:
            alice, bob = await users(api, "alice", "bob")
            conv = (await api.create(alice, "dm", [bob]))["id"]
            await post(api, alice, conv, f"before{tag}")
            assert len(await found(api, bob, f"before{tag}", 1)) == 1
            proxy.cut()
            sent = [await post(api, alice, conv, f"during{tag} {i}") for i in range(5)]  # chat goes on
            assert [m["seq"] for m in sent] == list(range(sent[0]["seq"], sent[0]["seq"] + 5))
            r = await search(api, bob, q=f"before{tag}")
            assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
            proxy.restore()
            assert len(await found(api, bob, f"during{tag}", 5, within=30)) == 5  # the backlog drained
    finally:
        proxy.stop()
