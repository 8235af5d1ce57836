"""Search through real processes (PROTOCOL §5 search), on SQLite FTS5 and on a real OpenSearch:
indexed from the event stream, only the caller's conversations, edits and deletes reflected,
bad text refused with 422 (never 500), cursor paging without duplicates; the SDK and the CLI.
(The storage layer's own suite runs on both too: services/search/tests.)"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from chat_devtools.tcp_proxy import TcpProxy
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from chat_proto.subjects import EVT_STREAM, evt_conv
from chat_sdk import ChatClient, SearchPage
from helpers.chat_client import Api, User
from helpers.peer import users
from nats.js.errors import NotFoundError

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


async def lost_counted(api: Api, metrics_url: str, at_least: float, within: float) -> float:
    """chat_search_events_lost_total, read until it reaches ``at_least`` or ``within`` s pass."""
    deadline = time.monotonic() + within
    while True:
        metrics = (await api.http.get(f"{metrics_url}/metrics")).text
        (line,) = [x for x in metrics.splitlines() if x.startswith("chat_search_events_lost_total ")]
        value = float(line.split()[1])
        if value >= at_least or time.monotonic() > deadline:
            return value
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
    c = cluster(search=True, env=search_env)
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
    c = cluster(search=True, env=search_env)
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
    c = cluster(search=True, env=NO_RATE_LIMITS)
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
        c = cluster(search=True, env=env, fresh=True)  # its own proxy
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
            assert int(r.headers["retry-after"]) >= 1
            proxy.restore()
            assert len(await found(api, bob, f"during{tag}", 5, within=30)) == 5  # the backlog drained
    finally:
        proxy.stop()


# -- rebuild ------------------------------------------------------------------------------
async def _damage_index(env: dict[str, str], conv: str, lost: str, ghost: str) -> None:
    """Behind the service's back: drop the documents containing ``lost`` and add a message
    that the store never had (``ghost``), as a restored snapshot or lost events would."""
    from chat_search.backends import Doc
    from chat_search.backends.select import backend_from
    from chat_search.settings import SearchSettings

    settings = SearchSettings(**{k[len("SEARCH_") :].lower(): v for k, v in env.items() if k.startswith("SEARCH_")})
    if settings.backend == "fts":
        db = sqlite3.connect(settings.fts_path, timeout=10)
        with db:
            db.execute("DELETE FROM search_docs WHERE body LIKE ?", (f"%{lost}%",))
        db.close()
    else:
        from opensearchpy import OpenSearch

        client = OpenSearch([settings.opensearch_url])
        body = {"query": {"match": {"body": lost}}}
        await asyncio.to_thread(client.delete_by_query, index=settings.index_prefix, body=body, refresh=True)
        client.close()
    backend = backend_from(settings)
    await backend.start()
    event = {"kind": "message", "conv": conv, "seq": 900_000, "body": ghost, "ts": "2025-01-01T00:00:00.000Z"}
    await backend.upsert([Doc(conv, 900_000, "nobody", event["ts"], ghost, [], event)])
    await backend.close()


async def test_reindex_while_writing(cluster: ClusterFactory, search_env: dict[str, str]) -> None:
    """``chat-admin search reindex`` while messages keep coming: afterwards the index is the
    store's — lost documents back, a document the store never had gone, deletes and edits
    as they are — and nothing sent during the rebuild is missing."""
    c = cluster(search=True, env=search_env)
    assert c.search is not None
    tag = uuid.uuid4().hex[:8]
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "group", [bob]))["id"]
        sent = [await post(api, alice, conv, f"old{tag} lost{tag} {i}") for i in range(20)]
        for m in sent[:2]:
            r = await api.http.delete(f"/v1/conversations/{conv}/messages/{m['seq']}", headers=alice.headers)
            assert r.status_code == 200, r.text
        r = await api.http.patch(
            f"/v1/conversations/{conv}/messages/{sent[2]['seq']}", headers=alice.headers, json={"body": f"new{tag}"}
        )
        assert r.status_code == 200, r.text
        assert len(await found(api, bob, f"old{tag}", 17, limit=100)) == 17
        assert len(await found(api, bob, f"new{tag}", 1)) == 1
        await _damage_index(c.search.env, conv, f"lost{tag}", f"ghost{tag}")
        assert len(await found(api, bob, f"ghost{tag}", 1)) == 1
        assert await found(api, bob, f"old{tag}", 0) == []

        live: list[dict[str, Any]] = []
        stop = asyncio.Event()

        async def keep_writing() -> None:
            for i in range(90):  # bounded: at most 90 messages, fewer when the reindex ends first
                if stop.is_set():
                    return
                live.append(await post(api, bob, conv, f"live{tag} {i}"))
                await asyncio.sleep(0.03)

        writer = asyncio.create_task(keep_writing())
        exe = str(Path(sys.executable).with_name("chat-admin"))
        env = {**os.environ, **c.search.env}
        try:
            p = await asyncio.to_thread(
                subprocess.run,
                [exe, "search", "reindex", "--no-progress"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            stop.set()
            await writer
        assert p.returncode == 0, p.stdout + p.stderr
        assert "reindexed" in p.stdout
        assert len(live) >= 3  # messages went on during the rebuild
        assert len(await found(api, bob, f"old{tag}", 17, limit=100)) == 17  # lost ones back
        assert await found(api, bob, f"ghost{tag}", 0) == []
        hits = await found(api, bob, f"new{tag}", 1)
        assert [h["event"]["seq"] for h in hits] == [sent[2]["seq"]]
        got = {h["event"]["seq"] for h in await found(api, bob, f"live{tag}", len(live), limit=100)}
        assert got == {m["seq"] for m in live}
        # a second run at once is fine (the first released its lock); status says nothing runs
        p = await asyncio.to_thread(
            subprocess.run, [exe, "search", "status"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert p.returncode == 0 and "no rebuild is running" in p.stdout, p.stdout + p.stderr


async def test_events_lost_to_the_stream_trigger_a_rebuild(cluster: ClusterFactory) -> None:
    """Search is down while the stream drops events (retention): when it comes back it
    counts them in chat_search_events_lost_total and rebuilds from the messages store. Then
    messages goes down: search keeps answering from the index (read-only)."""
    c = cluster(
        search=True, env={**NO_RATE_LIMITS, "SEARCH_GAP_CHECK_S": "1", "SEARCH_CONVS_CACHE_S": "0.2"}, fresh=True
    )
    assert c.search is not None and c.account is not None
    tag = uuid.uuid4().hex[:8]
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        await post(api, alice, conv, f"early{tag}")
        assert len(await found(api, bob, f"early{tag}", 1)) == 1
        c.search.kill()
        missed = [await post(api, alice, conv, f"missed{tag} {i}") for i in range(5)]
        nc = await c.account.connect(c.nats_url)
        try:
            js = nc.jetstream()
            # A sender is answered at commit, its event is published just after: purge only
            # once the last missed event is in the stream.
            deadline = time.monotonic() + 10
            while True:
                try:
                    last_ev = json.loads((await js.get_last_msg(EVT_STREAM, evt_conv(conv))).data)
                except NotFoundError:
                    last_ev = {}
                if last_ev.get("seq") == missed[-1]["seq"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert last_ev.get("seq") == missed[-1]["seq"], last_ev
            last = (await js.stream_info(EVT_STREAM)).state.last_seq
            await js.purge_stream(EVT_STREAM, seq=last + 1)  # retention took everything so far
        finally:
            await nc.close()
        c.search.start()
        hits = await found(api, bob, f"missed{tag}", 5, within=30)
        assert sorted(h["event"]["seq"] for h in hits) == [m["seq"] for m in missed]
        # counted when the rebuild returns, which may be just after its documents are visible
        assert await lost_counted(api, c.search.metrics_url, at_least=5, within=10) >= 5
        await post(api, alice, conv, f"after{tag}")  # and live indexing goes on
        assert len(await found(api, bob, f"after{tag}", 1)) == 1
        for p in c.messages:  # messages down: search still answers (read-only, last known conversations)
            p.kill()
        await asyncio.sleep(0.5)
        r = await search(api, bob, q=f"after{tag}")
        assert r.status_code == 200 and len(r.json()["hits"]) == 1, r.text
