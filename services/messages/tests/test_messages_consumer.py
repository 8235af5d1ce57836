"""The command consumer isolates failures: a batch that raises is split until the command
that fails on its own is found; that one is refused (error result, terminated), the rest
commit in order. Transient errors (the database away) redeliver the whole batch instead.
Real store (SQLite) and writer; the JetStream messages and NATS publishing are recorded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest
from chat_messages.consumers import CommandConsumer, transient
from chat_messages.conversations import Conversations
from chat_messages.store import Store
from chat_messages.writer import Writer
from chat_proto.commands import SendCommand
from chat_proto.events import Event
from chat_proto.messages_api import CreateConversation, HistoryQuery
from sqlalchemy.exc import DataError, DBAPIError, OperationalError

POISON = "this body makes the store raise"


class Published:
    """The Publisher port: what would go on the bus."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish_events(self, events: list[Event]) -> None:
        self.events.extend(events)


@dataclass
class FakeMsg:
    """A JetStream message as the consumer uses it."""

    data: bytes
    subject: str = "chat.cmd.send.c"
    num_delivered: int = 1
    outcome: list[str] = field(default_factory=list)

    @property
    def reply(self) -> str:
        """The ack subject JetStream gives a delivered message (what its count is read from)."""
        return f"$JS.ACK.CHAT_CMDS.messages.{self.num_delivered}.1.1.1733580000000000000.0"

    async def ack(self) -> None:
        self.outcome.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.outcome.append("nak")

    async def term(self) -> None:
        self.outcome.append("term")


class FakeNats:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.published.append((subject, orjson.loads(data)))

    def results(self) -> dict[str, dict[str, Any]]:
        return {r["client_msg_id"]: r for _, batch in self.published for r in batch["results"]}


class FailingStore(Store):
    """Raises like a database refusing a value, for any batch holding the poison body;
    or like a database that is away, while ``down``."""

    down = False

    def insert_events(self, conn: Any, events: list[Event]) -> None:
        if self.down:
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        if any(e.body == POISON for e in events):
            raise DataError("INSERT", {}, Exception("value out of range"))
        super().insert_events(conn, events)


def command(conv: str, sender: str, cmid: str, body: str) -> FakeMsg:
    cmd = SendCommand(conv=conv, sender=sender, client_msg_id=cmid, body=body, reply_subject="gw.results")
    return FakeMsg(cmd.model_dump_json().encode())


@pytest.fixture
async def setup(store: Store, convs: Conversations) -> tuple[CommandConsumer, FakeNats, str, FailingStore]:
    conv = str((await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"])
    failing = FailingStore(store.engine)
    nc = FakeNats()
    consumer = CommandConsumer(cast(Any, nc), cast(Any, None), Writer(failing), cast(Any, Published()))
    return consumer, nc, conv, failing


async def test_one_poison_command_is_refused_and_the_rest_commit(
    setup: tuple[CommandConsumer, FakeNats, str, FailingStore], convs: Conversations
) -> None:
    consumer, nc, conv, _ = setup
    msgs = [command(conv, "alice" if i % 2 else "bob", f"m{i}", f"hello {i}") for i in range(9)]
    msgs.insert(5, command(conv, "alice", "bad", POISON))
    await consumer.handle(cast(Any, msgs))

    assert [m.outcome for m in msgs] == [["term"] if m is msgs[5] else ["ack"] for m in msgs]
    results = nc.results()
    assert results["bad"]["ok"] is False and results["bad"]["error"]["code"] == "invalid"
    good = [f"m{i}" for i in range(9)]
    assert all(results[c]["ok"] for c in good)
    # committed in command order, gap-free after the two member_joined events
    assert [results[c]["event"]["seq"] for c in good] == list(range(3, 12))
    hist = await convs.history("bob", HistoryQuery(conv=conv, limit=200))
    assert [e["body"] for e in hist["events"][2:]] == [f"hello {i}" for i in range(9)]


async def test_transient_failure_redelivers_the_whole_batch(
    setup: tuple[CommandConsumer, FakeNats, str, FailingStore], convs: Conversations
) -> None:
    consumer, nc, conv, failing = setup
    failing.down = True
    msgs = [command(conv, "alice", f"m{i}", f"hello {i}") for i in range(4)]
    await consumer.handle(cast(Any, msgs))
    assert [m.outcome for m in msgs] == [["nak"]] * 4 and nc.published == []
    failing.down = False
    await consumer.handle(cast(Any, msgs))
    assert [m.outcome for m in msgs] == [["nak", "ack"]] * 4


async def test_malformed_command_is_answered_and_terminated(
    setup: tuple[CommandConsumer, FakeNats, str, FailingStore],
) -> None:
    consumer, nc, conv, _ = setup
    raw = {
        "v": 1,
        "conv": conv,
        "sender": "alice",
        "client_msg_id": "huge",
        "body": "x",
        "reply_to": 2**64 - 1,
        "reply_subject": "gw.results",
    }
    bad = FakeMsg(orjson.dumps(raw))
    ok = command(conv, "alice", "fine", "fine")
    await consumer.handle(cast(Any, [bad, ok]))
    assert bad.outcome == ["term"] and ok.outcome == ["ack"]
    results = nc.results()
    assert results["huge"]["ok"] is False and results["huge"]["error"]["code"] == "invalid"
    assert "reply_to" in results["huge"]["error"]["message"]
    assert results["fine"]["ok"] is True


def test_what_counts_as_transient() -> None:
    assert transient(OperationalError("x", {}, Exception("database is locked")))
    assert transient(ConnectionRefusedError()) and transient(TimeoutError())
    assert not transient(DataError("x", {}, Exception("out of range")))
    # PostgreSQL restarting (asyncpg's CannotConnectNowError, SQLSTATE 57P03, arrives as a
    # plain DBAPIError): redelivered later, never refused as unstorable
    starting = Exception("the database system is not yet accepting connections")
    starting.sqlstate = "57P03"  # type: ignore[attr-defined]
    assert transient(DBAPIError("x", {}, starting))
    unique = Exception("duplicate key")
    unique.sqlstate = "23505"  # type: ignore[attr-defined]
    assert not transient(DBAPIError("x", {}, unique))
    assert not transient(OverflowError("int too large"))


class SlowStream:
    """The Publisher port with a JetStream that takes its time to store the events."""

    def __init__(self) -> None:
        self.stored = asyncio.Event()
        self.events: list[Event] = []

    async def publish_events(self, events: list[Event]) -> None:
        await self.stored.wait()
        self.events.extend(events)


async def test_senders_are_answered_at_commit_and_commands_acked_after_publication(
    store: Store, convs: Conversations
) -> None:
    """An ack promises a durably stored message: the senders are answered as soon as the
    batch committed, not after JetStream stored the events; the commands themselves are
    acked only after that (a crash in between redelivers them and publishes the events)."""
    conv = str((await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"])
    nc, stream = FakeNats(), SlowStream()
    consumer = CommandConsumer(cast(Any, nc), cast(Any, None), Writer(store), cast(Any, stream))
    msgs = [command(conv, "alice", f"m{i}", f"hello {i}") for i in range(3)]
    handled = asyncio.create_task(consumer.handle(cast(Any, msgs)))
    for _ in range(200):
        if nc.published:
            break
        await asyncio.sleep(0.01)
    results = nc.results()
    assert [results[f"m{i}"]["event"]["seq"] for i in range(3)] == [3, 4, 5]  # answered, stored
    assert stream.events == [] and all(m.outcome == [] for m in msgs)  # not published, not acked
    stream.stored.set()
    await handled
    assert [e.seq for e in stream.events] == [3, 4, 5] and all(m.outcome == ["ack"] for m in msgs)


class FlakyStream:
    """The Publisher port: JetStream away for the first ``failures`` publications."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.events: list[Event] = []

    async def publish_events(self, events: list[Event]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TimeoutError("no PubAck")
        self.events.extend(events)


async def test_stored_events_are_published_again_whatever_the_delivery_count(
    store: Store, convs: Conversations
) -> None:
    """A batch committed but not published (NATS went away) is redelivered; after a NATS
    restart its commands can come back counted as delivered once. Their events, found in
    the store, are published again all the same, before the new ones of the batch."""
    conv = str((await convs.create("alice", CreateConversation(kind="dm", members=["bob"])))["conversation"]["id"])
    nc, stream = FakeNats(), FlakyStream(failures=1)
    consumer = CommandConsumer(cast(Any, nc), cast(Any, None), Writer(store), cast(Any, stream))
    first = [command(conv, "alice", f"m{i}", f"hello {i}") for i in range(3)]
    await consumer.handle(cast(Any, first))
    assert all(m.outcome == ["nak"] for m in first) and stream.events == []  # committed, not published
    again = [command(conv, "alice", f"m{i}", f"hello {i}") for i in range(3)]  # delivered "once" again
    new = command(conv, "alice", "m3", "hello 3")
    await consumer.handle(cast(Any, [*again, new]))
    assert [e.seq for e in stream.events] == [3, 4, 5, 6]
    assert all(m.outcome == ["ack"] for m in [*again, new])
    assert [nc.results()[f"m{i}"]["event"]["seq"] for i in range(4)] == [3, 4, 5, 6]
