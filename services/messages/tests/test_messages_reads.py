"""The read path (history, sync, events_range) on SQLite and on PostgreSQL (asyncpg, the
server `make test` starts: CHAT_TEST_PG_URL; missing: skipped locally, a failure under CI).

Reads build wire dicts straight from rows (``store.wire_from_row``), without a transaction
on PostgreSQL (``Store.read``), and a history page is a range scan of the primary key."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from chat_common.db import make_engine, migrate
from chat_devtools.postgres import scratch_database
from chat_messages import history_store
from chat_messages.conversations import Conversations
from chat_messages.history_store import EVENT_COLUMNS, history_query, page_query, wire_from_row
from chat_messages.main import MIGRATIONS
from chat_messages.models import events as E
from chat_messages.store import Store, event_from_row
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Attachment, ConversationChanges, Event
from chat_proto.messages_api import CreateConversation, EventsRange, HistoryQuery, SyncPosition, SyncQuery
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

_BASE = os.environ.get("CHAT_TEST_PG_URL", "")
PG_URL = f"{_BASE.rstrip('/')}/postgres" if _BASE else ""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/messages.db")
        await migrate(engine, MIGRATIONS, "alembic_version_messages")
        yield Store(engine)
        await engine.dispose()
        return
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CHAT_TEST_PG_URL not set under CI")
        pytest.skip("CHAT_TEST_PG_URL not set (run the tests with `make test`)")
    async with scratch_database(_BASE, "messages") as url:
        engine = make_engine(url, pool_size=1)  # one connection: reused
        try:
            await migrate(engine, MIGRATIONS, "alembic_version_messages")
            yield Store(engine)
        finally:
            await engine.dispose()


class Everyone:
    async def missing(self, user_ids: list[str]) -> list[str]:
        return []


@pytest.fixture
def any_convs(any_store: Store, publisher: Any) -> Conversations:
    return Conversations(any_store, publisher, Everyone())


def every_shape(conv: str) -> list[Event]:
    att = Attachment(media_id="m1", mime="image/png", size=10, name="a.png", width=2, height=3)
    bare = Attachment(media_id="m2", mime="text/plain", size=5)
    ts = "2026-01-01T00:00:00.000Z"
    return [
        Event(conv=conv, seq=1, kind="member_joined", sender="alice", ts=ts, user_id="alice", role="owner"),
        Event(conv=conv, seq=2, kind="message", sender="alice", ts=ts, client_msg_id="c1", body="hi"),
        Event(
            conv=conv, seq=3, kind="message", sender="bob", ts=ts, client_msg_id="c2", body="", attachments=[att, bare]
        ),
        Event(conv=conv, seq=4, kind="message", sender="bob", ts=ts, client_msg_id="c3", body="re", reply_to=2),
        Event(conv=conv, seq=5, kind="edit", sender="alice", ts=ts, client_msg_id="c4", body="hi!", target=2),
        Event(conv=conv, seq=6, kind="message", sender="bob", ts=ts, body="gone", attachments=[att], deleted=True),
        Event(conv=conv, seq=7, kind="delete", sender="bob", ts=ts, target=6),
        Event(
            conv=conv,
            seq=8,
            kind="conversation_updated",
            sender="alice",
            ts=ts,
            changes=ConversationChanges(name="n", topic="", archived=False),
        ),
        Event(conv=conv, seq=9, kind="role_changed", sender="alice", ts=ts, user_id="bob", role="admin"),
    ]


async def test_wire_from_row_is_to_wire_of_the_event(any_store: Store) -> None:
    async with any_store.tx() as conn:
        await conn.run_sync(any_store.insert_events, every_shape("c1"))
        rows = (await conn.execute(select(*EVENT_COLUMNS).where(E.c.conv_id == "c1").order_by(E.c.seq))).all()
    assert len(rows) == 9
    for r in rows:
        assert wire_from_row(r) == event_from_row(r).to_wire(), r.seq


async def test_history_sync_and_ranges(any_store: Store, any_convs: Conversations) -> None:
    conv = (await any_convs.create("alice", CreateConversation(kind="group", members=["bob"])))["conversation"]["id"]
    async with any_store.tx() as conn:
        await any_convs.append(conn, conv, [{"kind": "message", "sender": "bob", "body": f"m{i}"} for i in range(30)])
    # seqs 1, 2: member_joined; 3..32: messages
    page = await any_convs.history("bob", HistoryQuery(conv=conv, limit=5))
    assert [e["seq"] for e in page["events"]] == [28, 29, 30, 31, 32] and page["has_more"]
    page = await any_convs.history("bob", HistoryQuery(conv=conv, before=3, limit=5))
    assert [e["kind"] for e in page["events"]] == ["member_joined"] * 2 and not page["has_more"]
    page = await any_convs.history("bob", HistoryQuery(conv=conv, after=30, before=32, limit=5))
    assert [e["seq"] for e in page["events"]] == [31] and not page["has_more"]
    res = await any_convs.sync(
        "bob",
        SyncQuery(
            positions=[SyncPosition(conv=conv, after=29), SyncPosition(conv="nosuch", after=0)],
            per_conv=2,
            max_bytes=4096,
        ),
    )
    assert [[e["seq"] for e in c["events"]] for c in res["convs"]] == [[30, 31]]
    assert res["convs"][0]["has_more"] and res["not_found"] == ["nosuch"]
    rng = await any_convs.events_range(EventsRange(conv=conv, after=10, before=13, limit=50))
    assert [e["seq"] for e in rng["events"]] == [11, 12]
    # a read leaves the pooled connection as it found it: a later transaction still rolls back
    with pytest.raises(RuntimeError):
        async with any_store.tx() as conn:
            late = Event(conv=conv, seq=99, kind="message", sender="bob", ts="t")
            await conn.run_sync(any_store.insert_events, [late])
            raise RuntimeError("roll back")
    assert [e["seq"] for e in (await any_convs.history("bob", HistoryQuery(conv=conv, limit=1)))["events"]] == [32]


async def test_history_checks_access(any_store: Store, any_convs: Conversations) -> None:
    """One statement on PostgreSQL reads the page and the facts the permission check needs:
    the same answers as two on SQLite."""
    dm = (await any_convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"]
    chan = (await any_convs.create("alice", CreateConversation(kind="channel", name="pub")))["conversation"]["id"]
    for who, conv in (("carol", dm), ("carol", "nosuch"), ("alice", "nosuch")):
        with pytest.raises(ChatError) as exc:
            await any_convs.history(who, HistoryQuery(conv=conv))
        assert exc.value.code == ErrorCode.NOT_FOUND
    page = await any_convs.history("carol", HistoryQuery(conv=chan))  # a public channel: anyone reads
    assert [e["kind"] for e in page["events"]] == ["member_joined"] and not page["has_more"]
    with pytest.raises(ChatError) as exc:
        await any_convs.history("carol", HistoryQuery(conv=chan, members_only=True))
    assert exc.value.code == ErrorCode.NOT_FOUND
    empty = await any_convs.history("bob", HistoryQuery(conv=dm, before=1))  # a range without events
    assert empty == {"events": [], "has_more": False}
    assert [e["seq"] for e in (await any_convs.history("bob", HistoryQuery(conv=dm, after=1)))["events"]] == [2]


@pytest.mark.parametrize("rows_per_query", [1000, 7])
async def test_sync_of_many_conversations(
    any_store: Store, any_convs: Conversations, monkeypatch: pytest.MonkeyPatch, rows_per_query: int
) -> None:
    """Positions of several conversations: new events of each (at most per_conv, then
    has_more), none for one with nothing new or a position past its end, not_found for the
    others; in groups of statements when SYNC_ROWS_PER_QUERY is small; the byte cap cuts."""
    monkeypatch.setattr(history_store, "SYNC_ROWS_PER_QUERY", rows_per_query)
    ids = []
    for _ in range(5):
        c = await any_convs.create("alice", CreateConversation(kind="group", members=["bob"]))
        ids.append(c["conversation"]["id"])
    theirs = (await any_convs.create("carol", CreateConversation(kind="dm", members=["alice"])))["conversation"]["id"]
    async with any_store.tx() as conn:
        for n, conv in enumerate(ids):  # 2 member_joined, then 3 * n messages
            specs = [{"kind": "message", "sender": "alice", "body": f"{conv}-{i}"} for i in range(3 * n)]
            if specs:
                await any_convs.append(conn, conv, specs)
    positions = {ids[0]: 2, ids[1]: 2, ids[2]: 3, ids[3]: 99, ids[4]: 0, theirs: 0, "nosuch": 0}
    q = SyncQuery(
        positions=[SyncPosition(conv=c, after=a) for c, a in positions.items()], per_conv=5, max_bytes=1 << 19
    )
    res = await any_convs.sync("bob", q)
    got = {c["conv"]: ([e["seq"] for e in c["events"]], c["has_more"]) for c in res["convs"]}
    assert [c["conv"] for c in res["convs"]] == ids  # in the order asked
    assert got == {
        ids[0]: ([], False),
        ids[1]: ([3, 4, 5], False),
        ids[2]: ([4, 5, 6, 7, 8], False),
        ids[3]: ([], False),
        ids[4]: ([1, 2, 3, 4, 5], True),
    }
    assert res["not_found"] == [theirs, "nosuch"] and res["rest"] == []
    assert all(e["body"] == f"{e['conv']}-{e['seq'] - 3}" for c in res["convs"] for e in c["events"] if e["seq"] > 2)
    one = len(orjson.dumps(res["convs"][1]["events"][0])) + 1
    cut = await any_convs.sync("bob", q.model_copy(update={"max_bytes": 3 * one + 2 * one}))
    assert [(c["conv"], len(c["events"]), c["has_more"]) for c in cut["convs"]] == [
        (ids[0], 0, False),
        (ids[1], 3, False),
        (ids[2], 2, True),
    ]
    assert cut["rest"] == ids[3:]


_ROWS = (
    "INSERT INTO events (conv_id, seq, kind, sender, ts, body, deleted) "
    "SELECT CASE WHEN g % 4 = 0 THEN 'other' || (g % 7) ELSE 'big' END, g, 'message', 'u', 't', 'b', false FROM {}"
)
SERIES = {
    "postgresql": _ROWS.format("generate_series(1, 80000) g"),
    "sqlite": _ROWS.format(
        "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 80000) SELECT g FROM s)"
    ),
}


async def plan_of(conn: AsyncConnection, stmt: Any, params: dict[str, Any]) -> str:
    """EXPLAIN (PostgreSQL) or EXPLAIN QUERY PLAN (SQLite) of ``stmt`` as the driver gets it."""
    c = stmt.compile(dialect=conn.dialect)
    bound = c.construct_params(params)
    args = [bound[k] for k in c.positiontup or ()]
    raw: Any = (await conn.get_raw_connection()).driver_connection
    if conn.dialect.name == "postgresql":
        return "\n".join(r[0] for r in await raw.fetch("EXPLAIN " + str(c), *args))
    cur = await raw.execute("EXPLAIN QUERY PLAN " + str(c), args)
    return "\n".join(str(r[3]) for r in await cur.fetchall())


async def test_history_is_a_range_scan_of_the_primary_key(any_store: Store) -> None:
    """The plan of every page shape (newest, before, after, between) in a conversation of
    60,000 events among others: a range scan of the primary key (conv_id, seq), never a
    sort of the conversation (bench/history.py measures it at 10,000,000 on PostgreSQL)."""
    dialect = any_store.engine.dialect.name
    async with any_store.tx() as conn:
        await conn.execute(text(SERIES[dialect]))
        await conn.execute(text("ANALYZE"))
    async with any_store.read() as conn:
        for before, after in ((None, None), (40_000, None), (None, 40_000), (40_000, 30_000)):
            plan = await plan_of(conn, *history_query("big", before, after, 51))
            if dialect == "postgresql":
                assert "Index Scan" in plan and "events_pkey" in plan and "Sort" not in plan, plan
                # the page as the service runs it: with the access facts, one statement
                plan = await plan_of(conn, *page_query("big", "u", before, after, 51))
                assert "events_pkey" in plan and "Sort" not in plan and "Seq Scan on events" not in plan, plan
            else:
                pk = (
                    await conn.execute(text("SELECT name FROM pragma_index_list('events') WHERE origin = 'pk'"))
                ).scalar()
                assert f"SEARCH events USING INDEX {pk} (conv_id=?" in plan and "TEMP B-TREE" not in plan, plan


async def _groups(convs: Conversations, n: int) -> list[str]:
    out = []
    for _ in range(n):
        made = await convs.create("alice", CreateConversation(kind="group", members=["bob"]))
        out.append(str(made["conversation"]["id"]))
    return out


async def test_a_batch_over_many_conversations_allocates_each_gap_free(any_convs: Conversations) -> None:
    """One write batch spanning several conversations (on PostgreSQL: the rows locked in
    order, then every conversation's seqs reserved in one statement)."""
    groups = await _groups(any_convs, 5)
    w = Writer(any_convs.store)
    cmds = [SendCommand(conv=g, sender="alice", client_msg_id=f"{g}-{i}", body="x") for i in range(3) for g in groups]
    res = await w.write_batch(cmds)
    assert all(o.created and o.event is not None for o in res.outcomes)
    for g in groups:
        seqs = [o.event.seq for o in res.outcomes if o.event is not None and o.event.conv == g]
        assert seqs == [3, 4, 5]  # after the two member_joined events, in command order
    again = await w.write_batch(cmds[:4])  # a replay allocates nothing
    assert [o.created for o in again.outcomes] == [False] * 4


@pytest.mark.postgres
async def test_concurrent_batches_over_the_same_conversations_do_not_deadlock() -> None:
    """Two writers (as two replicas would) commit batches over the same conversations in
    opposite command orders, at once: no deadlock, every seq once."""
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CHAT_TEST_PG_URL not set under CI")
        pytest.skip("CHAT_TEST_PG_URL not set (run the tests with `make test`)")
    async with scratch_database(_BASE, "messages") as url:
        engine = make_engine(url, pool_size=4)
        try:
            await migrate(engine, MIGRATIONS, "alembic_version_messages")
            store = Store(engine)
            convs = Conversations(store, _Silent(), Everyone())
            groups = await _groups(convs, 6)

            async def writer(name: str, order: list[str]) -> None:
                w = Writer(store)
                for r in range(15):
                    cmds = [SendCommand(conv=g, sender="alice", client_msg_id=f"{name}{r}{g}", body="x") for g in order]
                    res = await w.write_batch(cmds, maybe_replays=False)
                    assert all(o.created for o in res.outcomes)

            await asyncio.wait_for(asyncio.gather(writer("a", groups), writer("b", groups[::-1])), 60)
            async with store.read() as conn:
                for g in groups:
                    seqs = [r[0] for r in await conn.execute(select(E.c.seq).where(E.c.conv_id == g).order_by(E.c.seq))]
                    assert seqs == list(range(1, 2 + 30 + 1)), g
        finally:
            await engine.dispose()


class _Silent:
    async def publish_events(self, events: list[Event]) -> None:
        pass

    async def notify_membership(self, user: str, event: Event) -> None:
        pass
