"""One suite, two search backends: SQLite FTS5 (``fts``) and OpenSearch (``opensearch``).

OpenSearch is the embedded test node of ``chat_devtools.opensearch`` (one per module, ~10 s
to start); each test gets its own index prefix (template, index, alias) and writes with
``refresh=True`` so that they are searchable at once. Without the OpenSearch jars the
``opensearch`` half is skipped, or fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
import re
import sqlite3
import sys
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chat_devtools.opensearch import OpenSearchServer, default_home, is_installed
from chat_search.backends import (
    BackendUnavailable,
    Doc,
    Page,
    Position,
    QueryInvalid,
    RebuildBusy,
    Removal,
    SearchBackend,
    _query,
)
from chat_search.backends._query import gram_token, grams_of, parse_query, short_substring_term
from chat_search.backends.fts import LAYOUT, FtsBackend
from chat_search.backends.opensearch import OpenSearchBackend, index_template

BASE_TS = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ts(offset_ms: int) -> str:
    t = BASE_TS + timedelta(milliseconds=offset_ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def doc(
    conv: str, seq: int, body: str, *, attachments: list[str] | None = None, at: int | None = None, version: int = 0
) -> Doc:
    event = {"type": "message", "conv": conv, "seq": seq, "body": body, "attachments": attachments or []}
    return Doc(conv, seq, "u1", ts(seq * 1000 if at is None else at), body, attachments or [], event, version)


def keys(page: Page) -> list[tuple[str, int]]:
    return [(h.event["conv"], h.event["seq"]) for h in page.hits]


async def found(backend: SearchBackend, q: str, convs: list[str], conv: str | None = None) -> set[tuple[str, int]]:
    return set(keys(await backend.search(q, convs, 100, None, conv)))


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def opensearch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchServer]:
    env = os.environ.get("CHAT_TEST_OPENSEARCH_HOME")
    home = Path(env) if env else default_home()
    if not is_installed(home):
        msg = f"OpenSearch is not installed in {home} (python -m chat_devtools.opensearch install)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    server = OpenSearchServer(tmp_path_factory.mktemp("opensearch"), home=home).start()
    yield server
    server.close()


@pytest.fixture(params=["fts", "opensearch"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SearchBackend]:
    if request.param == "fts":
        fts = FtsBackend(tmp_path / "search.db")
        await fts.start()
        yield fts
        await fts.close()
        return
    server: OpenSearchServer = request.getfixturevalue("opensearch_server")
    prefix = f"t{uuid.uuid4().hex[:12]}-chat-messages"
    os_backend = OpenSearchBackend(server.url, index_prefix=prefix, refresh=True)
    await os_backend.start()
    yield os_backend
    await os_backend.close()
    client = server.client()
    await asyncio.to_thread(client.indices.delete, index=f"{prefix}-*,{prefix}.meta")
    await asyncio.to_thread(client.indices.delete_index_template, name=f"{prefix}-template")
    client.close()


# -- basics -------------------------------------------------------------------------------
async def test_start_is_idempotent_and_ping(backend: SearchBackend) -> None:
    await backend.upsert([doc("A", 1, "still here")])
    await backend.start()
    await backend.ping()
    assert await found(backend, "still", ["A"]) == {("A", 1)}


async def test_relevance_both_words_rank_first(backend: SearchBackend) -> None:
    await backend.upsert(
        [
            doc("A", 1, "quarterly numbers are in", at=3000),
            doc("A", 2, "the quarterly report is ready", at=1000),
            doc("A", 3, "a report about lunch", at=2000),
            doc("A", 4, "nothing relevant here", at=4000),
        ]
    )
    page = await backend.search("quarterly report", ["A"], 10, None)
    assert keys(page)[0] == ("A", 2)
    assert set(keys(page)) == {("A", 1), ("A", 2), ("A", 3)}
    assert page.next_cursor is None
    hit = page.hits[0]
    assert hit.event["body"] == "the quarterly report is ready"
    assert "<mark>quarterly</mark>" in hit.highlight and "<mark>report</mark>" in hit.highlight
    # a quoted phrase matches its words together only
    assert await found(backend, '"report is ready"', ["A"]) == {("A", 2)}


async def test_a_hit_carries_the_event_exactly_as_indexed(backend: SearchBackend, tmp_path: Path) -> None:
    # as the indexer makes them: every field of the wire event, attachments as objects
    full = {
        "conv": "A",
        "seq": 1,
        "kind": "message",
        "sender": "u7",
        "ts": ts(1000),
        "client_msg_id": "c-1",
        "body": "invoice attached",
        "attachments": [{"media_id": "m1", "mime": "application/pdf", "size": 10, "name": "invoice.pdf"}],
        "reply_to": None,
    }
    odd = {"conv": "A", "seq": 2, "kind": "message", "body": "invoice without a sender field"}
    await backend.upsert(
        [
            Doc("A", 1, "u7", ts(1000), "invoice attached", ["invoice.pdf"], full),
            Doc("A", 2, "", ts(2000), "invoice without a sender field", [], odd),
        ]
    )
    page = await backend.search("invoice", ["A"], 10, None)
    assert {h.event["seq"]: h.event for h in page.hits} == {1: full, 2: odd}
    if isinstance(backend, FtsBackend):  # the row does not keep the fields twice
        stored = {s: json.loads(e) for s, e in await backend._read("SELECT seq, event FROM search_docs")}
        assert stored[1] == {k: v for k, v in full.items() if k not in ("conv", "seq", "sender", "ts", "body")}
        assert stored[2] == odd  # not every column field in the event: kept whole


async def test_edit_replaces_the_text(backend: SearchBackend) -> None:
    await backend.upsert([doc("A", 1, "banana split")])
    assert await found(backend, "banana", ["A"]) == {("A", 1)}
    await backend.upsert([doc("A", 1, "cherry pie")])
    assert await found(backend, "banana", ["A"]) == set()
    page = await backend.search("cherry", ["A"], 10, None)
    assert keys(page) == [("A", 1)] and page.hits[0].event["body"] == "cherry pie"


async def test_idempotent_upsert_counts_once(backend: SearchBackend) -> None:
    d = doc("A", 7, "duplicate detection")
    await backend.upsert([d, d])
    await backend.upsert([d])
    page = await backend.search("duplicate", ["A"], 10, None)
    assert keys(page) == [("A", 7)]


async def test_deletes(backend: SearchBackend) -> None:
    await backend.upsert([doc("A", 1, "ephemeral one"), doc("A", 2, "ephemeral two"), doc("B", 1, "ephemeral b")])
    await backend.delete([("A", 1), ("A", 99), ("Z", 1)])
    await backend.delete([("A", 1)])  # again: fine
    await backend.delete([])
    assert await found(backend, "ephemeral", ["A", "B"]) == {("A", 2), ("B", 1)}
    await backend.delete_conv("A")
    assert await found(backend, "ephemeral", ["A", "B"]) == {("B", 1)}


# -- versions, positions, rebuilds --------------------------------------------------------
async def test_the_newest_version_wins_in_any_order(backend: SearchBackend) -> None:
    """An edit (version 5) indexed before its message (version 1) stays; a delete (version 9)
    is not undone by an older write arriving after it; a newer write after a delete is."""
    await backend.write([doc("A", 1, "edited text", version=5)], [])
    await backend.write([doc("A", 1, "original text")], [])  # the message, redelivered late
    assert await found(backend, "edited", ["A"]) == {("A", 1)}
    assert await found(backend, "original", ["A"]) == set()
    await backend.write([doc("A", 1, "edited again", version=7)], [])
    assert await found(backend, "again", ["A"]) == {("A", 1)}
    await backend.write([], [Removal("A", 1, 9)])
    await backend.write([doc("A", 1, "edited again", version=7)], [])  # an older edit, late
    assert await found(backend, "edited", ["A"]) == set()
    # a removal older than the document does not remove it
    await backend.write([doc("A", 2, "survivor text", version=6)], [])
    await backend.write([], [Removal("A", 2, 4)])
    assert await found(backend, "survivor", ["A"]) == {("A", 2)}


async def test_position_is_the_highest_written_per_stream(backend: SearchBackend) -> None:
    assert await backend.position("s1") is None
    await backend.write([doc("A", 1, "positioned")], [], Position("s1", 40))
    await backend.write([], [], Position("s1", 25))  # a slower replica's older batch
    await backend.write([], [], Position("s2", 3))
    assert await backend.position("s1") == 40
    assert await backend.position("s2") == 3
    assert await found(backend, "positioned", ["A"]) == {("A", 1)}


async def test_rebuild_replaces_the_index_while_live_writes_go_on(backend: SearchBackend) -> None:
    """Docs the rebuild does not write (stale: deleted while events were lost) disappear at
    the finish; live writes during the rebuild land in the new copy; searching works all along."""
    await backend.write([doc("A", 1, "alpha kept"), doc("A", 2, "alpha stale"), doc("A", 3, "alpha edited")], [])
    target = await backend.begin_rebuild("test")
    state = await backend.rebuild_state()
    assert state is not None and state["owner"] == "test"
    with pytest.raises(RebuildBusy):
        await backend.begin_rebuild("someone else")
    # live indexing meanwhile: a new message, an edit newer than what the rebuild reads, a delete
    await backend.write([doc("A", 4, "alpha live"), doc("A", 3, "alpha edited live", version=6)], [], Position("s", 9))
    await backend.write([], [Removal("A", 5, 8)])
    assert await found(backend, "alpha", ["A"]) == {("A", 1), ("A", 2), ("A", 3), ("A", 4)}
    # the rebuild's reads of the store, older than some live writes
    await target.write(
        [doc("A", 1, "alpha kept"), doc("A", 3, "alpha edited", version=3), doc("A", 5, "alpha deleted")], []
    )
    await target.progress(3, 3)
    await target.finish(Position("s", 7))
    assert await backend.rebuild_state() is None
    assert await found(backend, "alpha", ["A"]) == {("A", 1), ("A", 3), ("A", 4)}  # A:2 was stale, A:5 deleted
    (hit,) = (await backend.search("edited", ["A"], 10, None)).hits
    assert hit.event["body"] == "alpha edited live"
    assert await backend.position("s") == 9
    # and the next rebuild can start
    again = await backend.begin_rebuild("test")
    await again.abort()
    assert await found(backend, "alpha", ["A"]) == {("A", 1), ("A", 3), ("A", 4)}  # abort: unchanged
    await backend.write([doc("B", 1, "after the abort")], [])
    assert await found(backend, "abort", ["B"]) == {("B", 1)}


async def test_a_stale_rebuild_is_taken_over(backend: SearchBackend) -> None:
    await backend.write([doc("A", 1, "beta one")], [])
    first = await backend.begin_rebuild("first")
    await asyncio.sleep(0.2)
    second = await backend.begin_rebuild("second", stale_after_s=0.1)  # first's heartbeat is older
    with pytest.raises(RebuildBusy):
        await first.progress(1, 1)
    await second.write([doc("A", 1, "beta one"), doc("A", 2, "beta two")], [])
    await second.finish(None)
    assert await found(backend, "beta", ["A"]) == {("A", 1), ("A", 2)}
    assert await backend.rebuild_state() is None


# -- membership and hostile input ---------------------------------------------------------
INJECTIONS = [
    "*",
    "conv:*",
    "conv:B",
    "_exists_:body",
    "/.*/",
    "body:secret",
    "OR",
    "secret OR *",
    "secret) OR (conv:B",
    "(" * 1000 + "secret" + ")" * 1000,
    "(" * 400 + "secret" + ")" * 400,
    "a OR " * 10_000,
    "secret OR " * 90,
    '"',
    '"secret',
    "\\",
    "\x00",
    "secret\x00conv",
    "x" * 10_240,
    "secret " * 140,
    '{"match_all": {}}',
    "' OR 1=1 --",
    "secret NEAR(body conv)",
    "secret* ^secret se?ret~2",
    "\ud800 secret",
    "北京" * 499,
]


@pytest.fixture
async def two_convs(backend: SearchBackend) -> SearchBackend:
    words = "secret conv body exists match all or near a x 北京"
    await backend.upsert([doc("A", 1, f"A says {words}"), doc("A", 2, "public note in A")])
    await backend.upsert([doc("B", s, f"B says {words} number {s}") for s in range(1, 6)])
    return backend


async def test_membership_filter(two_convs: SearchBackend) -> None:
    backend = two_convs
    assert await found(backend, "secret", ["A"]) == {("A", 1)}
    assert await found(backend, "secret", ["A", "B"]) == {("A", 1), *(("B", s) for s in range(1, 6))}
    assert await found(backend, "secret", ["A", "B"], conv="B") == {("B", s) for s in range(1, 6)}
    assert await found(backend, "secret", ["A"], conv="B") == set()  # conv must be a membership
    assert await found(backend, "secret", [], conv="A") == set()
    assert await found(backend, "secret", []) == set()


@pytest.mark.parametrize("q", INJECTIONS, ids=lambda q: repr(q[:24]) + f"[{len(q)}]")
async def test_hostile_queries_stay_in_their_conversations(two_convs: SearchBackend, q: str) -> None:
    try:
        page = await two_convs.search(q, ["A"], 100, None)
    except QueryInvalid:
        return
    assert all(h.event["conv"] == "A" for h in page.hits), keys(page)
    for hit in page.hits:
        assert "<script" not in hit.highlight


# -- languages and file names -------------------------------------------------------------
async def test_unicode_accents_and_emoji(backend: SearchBackend) -> None:
    await backend.upsert([doc("A", 1, "un café crème brûlée"), doc("A", 2, "party tonight 🎉"), doc("A", 3, "cafe")])
    assert ("A", 1) in await found(backend, "café", ["A"])
    assert ("A", 1) in await found(backend, "CRÈME", ["A"])
    assert await found(backend, "brûlée", ["A"]) == {("A", 1)}
    assert await found(backend, "🎉", ["A"]) == {("A", 2)}
    assert await found(backend, "party", ["A"]) == {("A", 2)}
    page = await backend.search("🎉", ["A"], 10, None)
    assert "<mark>🎉</mark>" in page.hits[0].highlight


async def test_cjk_words_inside_sentences(backend: SearchBackend) -> None:
    await backend.upsert(
        [
            doc("A", 1, "我们明天去北京开会"),
            doc("A", 2, "上海的天气很好"),
            doc("A", 3, "東京タワーに行きました"),
            doc("A", 4, "서울에서 만나요"),
        ]
    )
    assert await found(backend, "北京", ["A"]) == {("A", 1)}
    assert await found(backend, "明天去北京", ["A"]) == {("A", 1)}
    assert await found(backend, "上海", ["A"]) == {("A", 2)}
    assert await found(backend, "広州", ["A"]) == set()
    assert await found(backend, "タワー", ["A"]) == {("A", 3)}
    assert await found(backend, "東京", ["A"]) == {("A", 3)}
    assert await found(backend, "서울", ["A"]) == {("A", 4)}
    page = await backend.search("北京", ["A"], 10, None)
    assert re.sub(r"</?mark>", "", page.hits[0].highlight) == "我们明天去北京开会"
    assert "<mark>" in page.hits[0].highlight


async def test_file_name_tokens(backend: SearchBackend) -> None:
    await backend.upsert(
        [
            doc("A", 1, "", attachments=["report-2024.pdf"]),
            doc("A", 2, "see attached", attachments=["foo.png", "notes.txt"]),
            doc("A", 3, "lunch", attachments=["food.png"]),
        ]
    )
    assert await found(backend, "report", ["A"]) == {("A", 1)}
    assert await found(backend, "report-2024.pdf", ["A"]) == {("A", 1)}
    assert await found(backend, "2024", ["A"]) == {("A", 1)}
    assert await found(backend, "foo.png", ["A"]) == {("A", 2)}
    assert await found(backend, "FOO", ["A"]) == {("A", 2)}
    assert await found(backend, "notes.txt", ["A"]) == {("A", 2)}
    assert await found(backend, "fo", ["A"]) == set()
    assert await found(backend, "png", ["A"]) == {("A", 2), ("A", 3)}
    page = await backend.search("report", ["A"], 10, None)
    assert page.hits[0].event["attachments"] == ["report-2024.pdf"]


# -- paging -------------------------------------------------------------------------------
VARIANTS = ["paging alpha", "paging alpha alpha beta", "paging gamma", "paging alpha delta epsilon zeta"]


async def test_cursor_paging_every_doc_once_in_a_stable_order(backend: SearchBackend) -> None:
    docs = [doc("A" if i % 3 else "A2", i, VARIANTS[i % 4], at=(i // 5) * 1000) for i in range(250)]
    await backend.upsert(docs)
    await backend.upsert([doc("B", i, "paging alpha") for i in range(30)])

    async def walk() -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        cursor: str | None = None
        for _ in range(20):
            page = await backend.search("paging alpha", ["A", "A2"], 20, cursor)
            assert page.hits and len(page.hits) <= 20
            seen += keys(page)
            cursor = page.next_cursor
            if cursor is None:
                return seen
            assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
        raise AssertionError("more pages than documents")

    first = await walk()
    assert len(first) == 250 and set(first) == {(d.conv, d.seq) for d in docs}
    assert await walk() == first
    # same text = same score: within a variant the order is ts desc, conv, seq
    by_key = {(d.conv, d.seq): d for d in docs}
    for variant in VARIANTS:
        run = [k for k in first if by_key[k].body == variant]
        expected = sorted(sorted(run), key=lambda k: by_key[k].ts, reverse=True)  # stable: (conv, seq) in a ts
        assert run == expected, variant
    # the documents with one of the two words come last
    assert {by_key[k].body for k in first[-62:]} == {"paging gamma"}


async def test_bad_cursors_are_invalid(backend: SearchBackend) -> None:
    await backend.upsert([doc("A", i, "cursor test") for i in range(5)])
    page = await backend.search("cursor", ["A"], 2, None)
    assert page.next_cursor is not None
    assert len(keys(await backend.search("cursor", ["A"], 2, page.next_cursor))) == 2

    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    raw = json.loads(base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4)))
    garbage = [
        "",
        "garbage",
        "!!!",
        "x" * 5000,
        page.next_cursor + "A",
        b64([1, 2, 3]),
        b64({"b": raw["b"], "q": raw["q"], "k": ["1", 2, "A", 3]}),
        b64({"b": raw["b"], "q": raw["q"], "k": [1.0, 2, "A"]}),
        b64({"b": raw["b"], "q": raw["q"], "k": [float("inf"), 2, "A", 3]}),
        b64({"b": raw["b"], "q": raw["q"], "k": [1.0, True, "A", 3]}),
        b64({"b": raw["b"], "q": raw["q"], "k": [1.0, 2, {"x": 1}, 3]}),
        b64({"b": raw["b"], "q": raw["q"], "k": [1.0, 2, "A", 2**70]}),
        b64({**raw, "extra": 1}),
        b64({**raw, "b": "other"}),
    ]
    for cursor in garbage:
        with pytest.raises(QueryInvalid):
            await backend.search("cursor", ["A"], 2, cursor)
    with pytest.raises(QueryInvalid):  # a cursor belongs to its query
        await backend.search("test", ["A"], 2, page.next_cursor)
    with pytest.raises(QueryInvalid):
        await backend.search("cursor", ["A"], 2, page.next_cursor, conv="A")


async def test_limit_is_clamped(backend: SearchBackend) -> None:
    await backend.upsert([doc("A", i, "clamp me") for i in range(130)])
    page = await backend.search("clamp", ["A"], 0, None)
    assert len(page.hits) == 1 and page.next_cursor is not None
    assert len((await backend.search("clamp", ["A"], -5, None)).hits) == 1
    page = await backend.search("clamp", ["A"], 10**6, None)
    assert len(page.hits) == 100 and page.next_cursor is not None
    rest = await backend.search("clamp", ["A"], 10**6, page.next_cursor)
    assert len(rest.hits) == 30 and rest.next_cursor is None


# -- highlights ---------------------------------------------------------------------------
async def test_highlights_are_escaped_and_marked(backend: SearchBackend) -> None:
    long_body = " ".join(["filler"] * 150 + ["needle", "<b>bold</b>"] + ["filler"] * 150)
    await backend.upsert(
        [
            doc("A", 1, "<script>alert('x')</script> hello & welcome"),
            doc("A", 2, long_body),
            doc("A", 3, "", attachments=["hello.txt"]),
        ]
    )
    page = await backend.search("hello", ["A"], 10, None)
    assert set(keys(page)) == {("A", 1), ("A", 3)}
    for hit in page.hits:
        assert "<script" not in hit.highlight.lower()
        assert not re.search(r"<(?!/?mark>)", hit.highlight), hit.highlight
    body_hit = next(h for h in page.hits if h.event["seq"] == 1)
    assert "<mark>hello</mark>" in body_hit.highlight and "&lt;script&gt;" in body_hit.highlight
    assert html.unescape(re.sub(r"</?mark>", "", body_hit.highlight)) == "<script>alert('x')</script> hello & welcome"

    (hit,) = (await backend.search("needle", ["A"], 10, None)).hits
    assert "<mark>needle</mark>" in hit.highlight
    text = html.unescape(re.sub(r"</?mark>", "", hit.highlight))
    assert len(text) <= 320 and text.strip(" …") in long_body
    assert "<b>" not in hit.highlight


# -- unavailable backends (not parametrized: one per backend) -------------------------------
async def test_opensearch_down_is_unavailable() -> None:
    b = OpenSearchBackend("http://127.0.0.1:9", index_prefix="nowhere")
    with pytest.raises(BackendUnavailable):
        await b.ping()
    with pytest.raises(BackendUnavailable):
        await b.search("hello", ["A"], 10, None)
    with pytest.raises(BackendUnavailable):
        await b.upsert([doc("A", 1, "x")])
    await b.close()


async def test_fts_not_started_is_unavailable(tmp_path: Path) -> None:
    b = FtsBackend(tmp_path / "x.db")
    with pytest.raises(BackendUnavailable):
        await b.ping()
    await b.start()
    await b.ping()
    await b.close()
    with pytest.raises(BackendUnavailable):
        await b.search("hello", ["A"], 10, None)


async def test_backends_implement_the_interface_and_refuse_bad_docs(backend: SearchBackend) -> None:
    assert isinstance(backend, SearchBackend)
    bad = Doc("A", 1, "u1", "yesterday", "bad timestamp", [], {})
    with pytest.raises(ValueError):
        await backend.upsert([bad])
    await backend.upsert([])
    await backend.delete_conv("nobody")


async def test_opensearch_layout(opensearch_server: OpenSearchServer) -> None:
    """Template for ``{prefix}-*``, concrete index ``{prefix}-000001`` behind the alias."""
    prefix = f"t{uuid.uuid4().hex[:12]}-layout"
    b = OpenSearchBackend(opensearch_server.url, index_prefix=prefix, refresh=True)
    await b.start()
    await OpenSearchBackend(opensearch_server.url, index_prefix=prefix).start()  # a second process: fine
    client = opensearch_server.client()
    try:
        index_settings = client.indices.get_settings(index=prefix)[f"{prefix}-000001"]["settings"]["index"]
        assert index_settings["refresh_interval"] == "500ms"
        # few segments (the membership filter is looked up in each)
        assert index_settings["merge"]["policy"] == {"segments_per_tier": "4", "floor_segment": "32mb"}
        # a restart with another SEARCH_REFRESH_MS: the live index follows, and so does the template
        restarted = OpenSearchBackend(opensearch_server.url, index_prefix=prefix, refresh_ms=1000)
        await restarted.start()
        await restarted.close()
        index_settings = client.indices.get_settings(index=prefix)[f"{prefix}-000001"]["settings"]["index"]
        assert index_settings["refresh_interval"] == "1000ms"
        (tpl,) = client.indices.get_index_template(name=f"{prefix}-template")["index_templates"]
        assert tpl["index_template"]["template"]["settings"]["index"]["refresh_interval"] == "1000ms"
        assert set(client.indices.get_alias(name=prefix)) == {f"{prefix}-000001"}
        (template,) = client.indices.get_index_template(name=f"{prefix}-template")["index_templates"]
        assert template["index_template"]["index_patterns"] == [f"{prefix}-*"]
        index = client.indices.get(index=prefix)[f"{prefix}-000001"]
        assert index["settings"]["index"]["number_of_shards"] == "1"
        assert index["settings"]["index"]["number_of_replicas"] == "0"
        props = index["mappings"]["properties"]
        assert props["event"] == {"type": "object", "enabled": False}
        assert props["body"] == {"type": "text", "analyzer": "standard"}  # analyzed once
        assert props["body_cjk"] == {"type": "text", "analyzer": "cjk"}
        tokens = client.indices.analyze(index=prefix, body={"field": "attachments", "text": "IMG_2024-01.Final.PDF"})
        assert [t["token"] for t in tokens["tokens"]] == ["img", "2024", "01", "final", "pdf"]
    finally:
        await b.close()
        client.indices.delete(index=f"{prefix}-*")
        client.indices.delete_index_template(name=f"{prefix}-template")
        client.close()


async def test_opensearch_index_of_template_version_1_keeps_working(opensearch_server: OpenSearchServer) -> None:
    """An index made before ``body_cjk`` (a ``body.cjk`` multi-field, whole events in
    ``_source``) gains the field at start; old and new documents are both found, whole."""
    prefix = f"t{uuid.uuid4().hex[:12]}-v1"
    v1 = index_template(prefix)["template"]
    props = v1["mappings"]["properties"]
    del props["body_cjk"]
    props["body"] = {"type": "text", "analyzer": "standard", "fields": {"cjk": {"type": "text", "analyzer": "cjk"}}}
    client = opensearch_server.client()
    old_event = {"conv": "A", "seq": 1, "kind": "message", "sender": "u1", "ts": ts(1000), "body": "旧的北京消息 alpha"}
    new_event = {"conv": "A", "seq": 2, "kind": "message", "sender": "u2", "ts": ts(2000), "body": "新的北京消息 beta"}
    try:
        client.indices.create(index=f"{prefix}-000001", body={**v1, "aliases": {prefix: {"is_write_index": True}}})
        old_src = {k: old_event[k] for k in ("conv", "seq", "sender", "ts", "body")}
        client.index(index=prefix, id="A:1", body={**old_src, "attachments": [], "event": old_event}, refresh=True)
        b = OpenSearchBackend(opensearch_server.url, index_prefix=prefix, refresh=True)
        await b.start()
        try:
            await b.upsert([Doc("A", 2, "u2", ts(2000), new_event["body"], [], new_event)])
            assert "body_cjk" in client.indices.get_mapping(index=prefix)[f"{prefix}-000001"]["mappings"]["properties"]
            page = await b.search("北京", ["A"], 10, None)
            assert {h.event["seq"]: h.event for h in page.hits} == {1: old_event, 2: new_event}
            assert all("<mark>" in h.highlight for h in page.hits)
            assert await found(b, "alpha", ["A"]) == {("A", 1)}
            assert await found(b, "beta", ["A"]) == {("A", 2)}
            stored = client.get(index=prefix, id="A:2")["_source"]
            assert stored["event"] == {"kind": "message"} and stored["body_cjk"] == new_event["body"]
        finally:
            await b.close()
    finally:
        client.indices.delete(index=f"{prefix}-*")
        client.indices.delete_index_template(name=f"{prefix}-template", ignore=[404])
        client.close()


async def test_fts_searches_do_not_wait_for_an_open_write(tmp_path: Path) -> None:
    """Searches run on read-only connections of their own: a write transaction left open on
    the writer neither blocks them nor shows them its uncommitted rows."""
    b = FtsBackend(tmp_path / "r.db", readers=2)
    await b.start()
    await b.upsert([doc("A", 1, "hello committed")])
    writer = b._conn()
    await writer.execute("BEGIN IMMEDIATE")
    await writer.execute(
        "INSERT INTO search_docs (key, conv, seq, sender, ts, ts_ms, body, attachments, event) "
        "VALUES (12345, 'A', 2, 'u1', '', 0, 'hello uncommitted', '', '{}')"
    )
    try:
        pages = await asyncio.wait_for(asyncio.gather(*(b.search("hello", ["A"], 10, None) for _ in range(5))), 30)
        assert all(keys(p) == [("A", 1)] for p in pages)
        with pytest.raises(sqlite3.OperationalError):  # the readers are read-only
            async with b._reader() as reader:
                await reader.execute("DELETE FROM search_docs")
    finally:
        await writer.rollback()
        await b.close()


def _fts_check(path: Path) -> tuple[int, int]:
    """FTS5's own integrity check of both tables (raises when an index disagrees with
    search_docs), and how many rows each indexes."""
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO search_words (search_words) VALUES ('integrity-check')")
        db.execute("INSERT INTO search_tri (search_tri) VALUES ('integrity-check')")
        words = db.execute("SELECT count(*) FROM search_words_docsize").fetchone()[0]
        tri = db.execute("SELECT count(*) FROM search_tri_docsize").fetchone()[0]
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'search_grams'").fetchone():  # not in old files
            db.execute("INSERT INTO search_grams (search_grams) VALUES ('integrity-check')")
            grams = db.execute("SELECT count(*) FROM search_grams_docsize").fetchone()[0]
            assert grams == tri  # the same rows: those with substring characters
    return words, tri


async def test_fts_trigram_table_holds_only_rows_a_substring_term_can_match(tmp_path: Path) -> None:
    """Rows without a spaceless-script character or symbol stay out of the trigram table and
    the LIKE path; edits across the two kinds and deletes keep both indexes exact."""
    b = FtsBackend(tmp_path / "s.db")
    await b.start()
    try:
        await b.upsert(
            [
                doc("A", 1, "plain latin text"),
                doc("A", 2, "我们明天去北京开会"),
                doc("A", 3, "see attached", attachments=["北京.png"]),
                doc("A", 4, "party 🎉 tonight"),
                doc("A", 5, "another plain one"),
            ]
        )
        assert _fts_check(b.path) == (5, 3)
        assert await found(b, "北京", ["A"]) == {("A", 2), ("A", 3)}  # LIKE (2 characters)
        assert await found(b, "去北京", ["A"]) == {("A", 2)}  # trigram
        assert await found(b, "🎉", ["A"]) == {("A", 4)}
        # edits (versions are the edit events' seqs): CJK -> plain, plain -> CJK; a delete of each kind
        await b.upsert([doc("A", 2, "now plain", version=10), doc("A", 1, "去北京 later", version=11)])
        assert _fts_check(b.path) == (5, 3)
        assert await found(b, "去北京", ["A"]) == {("A", 1)}
        assert await found(b, "plain", ["A"]) == {("A", 2), ("A", 5)}
        await b.write([], [Removal("A", 1, 20), Removal("A", 5, 21)])
        assert _fts_check(b.path) == (3, 2)
        assert await found(b, "北京", ["A"]) == {("A", 3)}
    finally:
        await b.close()


# The first version's layout: every row in the trigram table, triggers without conditions.
_FIRST_LAYOUT = """
CREATE TABLE search_docs (
    id INTEGER PRIMARY KEY, conv TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,
    ts TEXT NOT NULL, ts_ms INTEGER NOT NULL, body TEXT NOT NULL, attachments TEXT NOT NULL,
    event TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0, gen INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conv, seq)
);
CREATE VIRTUAL TABLE search_words USING fts5(
    body, attachments, content='search_docs', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE search_tri USING fts5(
    body, attachments, content='search_docs', content_rowid='id', tokenize='trigram');
CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN
    INSERT INTO search_words (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
    INSERT INTO search_tri (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
END;
CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN
    INSERT INTO search_words (search_words, rowid, body, attachments)
        VALUES ('delete', old.id, old.body, old.attachments);
    INSERT INTO search_tri (search_tri, rowid, body, attachments) VALUES ('delete', old.id, old.body, old.attachments);
END;
CREATE TRIGGER search_docs_au AFTER UPDATE ON search_docs BEGIN
    INSERT INTO search_words (search_words, rowid, body, attachments)
        VALUES ('delete', old.id, old.body, old.attachments);
    INSERT INTO search_tri (search_tri, rowid, body, attachments) VALUES ('delete', old.id, old.body, old.attachments);
    INSERT INTO search_words (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
    INSERT INTO search_tri (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
END;
INSERT INTO search_docs (conv, seq, sender, ts, ts_ms, body, attachments, event)
    VALUES ('A', 1, 'u1', '', 0, 'old plain text', '', '{"type":"message","conv":"A","seq":1}'),
           ('A', 2, 'u1', '', 0, '老北京的故事', '', '{"type":"message","conv":"A","seq":2}');
"""


async def test_fts_file_of_the_first_layout_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(_FIRST_LAYOUT)
    assert _fts_check(path) == (2, 2)
    b = FtsBackend(path)
    await b.start()
    try:
        assert _fts_check(path) == (2, 2)  # old rows stay in the trigram table (sub = 1)
        assert _ids_are_keys(path) == 2
        assert await found(b, "北京", ["A"]) == {("A", 2)}
        assert await found(b, "plain", ["A"]) == {("A", 1)}
        # an old plain row edited and removed: its trigram entry goes with it
        await b.upsert([doc("A", 1, "still plain", version=10), doc("A", 3, "new plain")])
        assert _fts_check(path) == (3, 1)
        await b.write([], [Removal("A", 2, 11)])
        assert _fts_check(path) == (2, 0)
        assert await found(b, "北京", ["A"]) == set()
    finally:
        await b.close()
    b2 = FtsBackend(path)  # a second start changes nothing
    await b2.start()
    await b2.close()
    assert _fts_check(path) == (2, 0)
    assert _ids_are_keys(path) == 2


def _ids_are_keys(path: Path) -> int:
    """Every row's key (its rowid in the FTS indexes) is (its conversation's slot << 31) | seq;
    returns how many rows."""
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM search_meta WHERE key = 'layout'").fetchone() == (LAYOUT,)
        rows = db.execute(
            "SELECT d.key, c.slot, d.seq FROM search_docs d JOIN search_convs c ON c.conv = d.conv"
        ).fetchall()
        assert len(rows) == db.execute("SELECT count(*) FROM search_docs").fetchone()[0]
    assert all(i == (slot << 31) | seq for i, slot, seq in rows), rows
    return len(rows)


async def test_fts_short_substring_terms_are_found_from_their_own_index(tmp_path: Path) -> None:
    """One or two CJK characters or symbols: found through the grams index exactly where
    ``LIKE '%term%'`` finds them (inside sentences, in file names, not across a gap), and
    edits and deletes take their grams along; a mixed short term still uses LIKE."""
    b = FtsBackend(tmp_path / "g.db")
    await b.start()
    try:
        await b.upsert(
            [
                doc("A", 1, "我们明天去北京开会"),
                doc("A", 2, "北 京 apart"),
                doc("A", 3, "see", attachments=["老北京.png"]),
                doc("A", 4, "party 🎉🎉 tonight"),
                doc("A", 5, "a北 mixed"),
                doc("B", 1, "北京 elsewhere"),
            ]
        )
        assert _fts_check(b.path) == (6, 6)
        assert await found(b, "北京", ["A"]) == {("A", 1), ("A", 3)}
        assert await found(b, "京", ["A"]) == {("A", 1), ("A", 2), ("A", 3)}
        assert await found(b, "🎉", ["A"]) == {("A", 4)}
        assert await found(b, "🎉🎉", ["A"]) == {("A", 4)}
        assert await found(b, "a北", ["A"]) == {("A", 5)}  # mixed: LIKE
        assert await found(b, "北京", ["A", "B"], conv="B") == {("B", 1)}
        await b.upsert([doc("A", 1, "no longer", version=9)])
        await b.write([], [Removal("A", 3, 10)])
        assert _fts_check(b.path) == (5, 4)
        assert await found(b, "北京", ["A"]) == set()
        assert await found(b, "京", ["A"]) == {("A", 2)}
    finally:
        await b.close()


def test_substring_chars_are_spaceless_scripts_and_symbols() -> None:
    """The one compiled class agrees with its definition on every code point."""
    spaceless = re.compile(f"[{_query._SPACELESS_CLASS}]")
    wrong = [
        cp
        for cp in range(sys.maxunicode + 1)
        if not 0xD800 <= cp <= 0xDFFF
        and _query._is_substring_char(chr(cp))
        != (spaceless.match(chr(cp)) is not None or unicodedata.category(chr(cp)) == "So")
    ]
    assert wrong == []


def test_ascii_folds_character_for_character() -> None:
    """The highlighter's ASCII shortcut (no per-character fold) is what folding gives."""
    from chat_search.backends import _highlight

    text = "".join(chr(c) for c in range(128)) + " Foo.PNG MiXeD"
    folded, origin = _highlight._folded(text)
    assert origin is None and folded == "".join(_highlight._fold(ch) for ch in text)
    assert _highlight.highlight("Report Q3.PDF final", parse_query("q3.pdf").terms) == (
        "Report <mark>Q3.PDF</mark> final"
    )


def test_grams_are_what_like_finds() -> None:
    text = "x北京🎉y 东"
    tokens = set(grams_of(text).split())
    for i in range(len(text)):
        for n in (1, 2):
            term = text[i : i + n]
            if len(term) == n and short_substring_term(term):
                assert gram_token(term) in tokens, term
    assert gram_token("京🎉") in tokens and gram_token("🎉东") not in tokens  # a space between
    assert not short_substring_term("a北") and not short_substring_term("北京城")


async def test_fts_a_conversations_documents_are_one_id_range(tmp_path: Path) -> None:
    """FTS rowids are keys: a document written again keeps its key, conversations are
    ranges, and a search reads only the caller's (the other conversation's rows are not
    scored)."""
    b = FtsBackend(tmp_path / "k.db")
    await b.start()
    try:
        await b.upsert([doc("A", 1, "apple one"), doc("B", 1, "apple two"), doc("A", 2, "apple three")])
        await b.upsert([doc("A", 1, "apple one again", version=5)])
        assert _ids_are_keys(b.path) == 3
        assert await found(b, "apple", ["A"]) == {("A", 1), ("A", 2)}
        assert await found(b, "apple", ["A", "B"], conv="B") == {("B", 1)}
        assert await found(b, "apple", ["A"], conv="B") == set()  # not the caller's
        await b.delete_conv("A")
        assert await found(b, "apple", ["A", "B"]) == {("B", 1)}
        assert _fts_check(b.path) == (1, 0)
        # a conversation's first document written after a search, by another process on
        # the same file (a second replica): found (slots are remembered only once given)
        assert await found(b, "apple", ["B", "C"]) == {("B", 1)}
        other = FtsBackend(b.path, readers=0)
        await other.start()
        try:
            await other.upsert([doc("C", 7, "apple from elsewhere")])
        finally:
            await other.close()
        assert await found(b, "apple", ["B", "C"]) == {("B", 1), ("C", 7)}
    finally:
        await b.close()
