"""ConnectionSync with a real Connection: live events arriving during a sync are held and
written after the replay and its ``sync_done``; overlapping syncs; at most once between
live and replayed events; failures release holds and the replay-memory budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from chat_gateway.answers import Answers
from chat_gateway.connection import Connection
from chat_gateway.sync import ConnectionSync
from chat_proto import frames as F
from chat_proto.errors import ChatError, ErrorCode
from fakes import Client, FakeMessages, answer_sync, client, event, event_frame, eventually, settle, write_answer

BUDGET = 1 << 20


def setup(max_events: int = 500, **kw: Any) -> tuple[Client, FakeMessages, ConnectionSync]:
    c = client("u1", **kw)
    messages = FakeMessages()
    return c, messages, ConnectionSync(c.conn, messages, BUDGET, max_events)


def push(conn: Connection, conv: str, *seqs: int) -> None:
    for s in seqs:
        conn.push_event(conv, s, event_frame(event(conv, s)))


def sync_frame(positions: dict[str, int], ref: str | None = None) -> F.SyncFrame:
    return F.SyncFrame(type="sync", positions=positions, ref=ref)


async def test_live_events_during_a_sync_are_written_after_the_replay_and_sync_done() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3)
    c.conn.start_live("c1", 3)  # attached when the store was at 3
    messages.sync_gate = asyncio.Event()
    task = asyncio.create_task(answer_sync(sync, {"c1": 1}, ref="s1"))
    await eventually(lambda: len(messages.called("sync")) == 1)
    push(c.conn, "c1", 4, 5)  # live, while the sync call is out
    await settle()
    assert c.ws.sent == []
    assert [s for s, _ in c.conn.held["c1"]] == [4, 5]
    messages.sync_gate.set()
    await asyncio.wait_for(task, 2)
    await eventually(lambda: len(c.ws.sent) == 5)
    assert c.ws.kinds() == ["event:c1:2", "event:c1:3", "sync_done", "event:c1:4", "event:c1:5"]
    assert c.ws.frames()[2] == {"type": "sync_done", "truncated": [], "not_found": [], "ref": "s1"}
    assert c.conn.held == {} and c.conn._holds == {}
    assert (c.conn._held_n, c.conn._held_bytes) == (0, 0)
    push(c.conn, "c1", 6)  # and live again
    await eventually(lambda: c.seqs() == [2, 3, 4, 5, 6])


async def test_held_events_that_the_replay_brought_are_not_sent_twice() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3, 4, 5)  # 4 and 5 are committed before the sync reads
    c.conn.start_live("c1", 3)
    messages.sync_gate = asyncio.Event()
    task = asyncio.create_task(answer_sync(sync, {"c1": 1}))
    await eventually(lambda: len(messages.called("sync")) == 1)
    push(c.conn, "c1", 4, 5)  # ... and also arrive live: held
    messages.sync_gate.set()
    await asyncio.wait_for(task, 2)
    await eventually(lambda: "sync_done" in c.ws.kinds())
    push(c.conn, "c1", 6)
    await eventually(lambda: 6 in c.seqs())
    assert c.ws.kinds() == ["event:c1:2", "event:c1:3", "event:c1:4", "event:c1:5", "sync_done", "event:c1:6"]
    assert "ref" not in c.ws.frames()[4]  # the frame had none


async def test_the_replay_skips_what_the_connection_received_live() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3, 4)
    c.conn.start_live("c1", 2)  # 1, 2 are history; 3 came live
    push(c.conn, "c1", 3)
    await eventually(lambda: c.seqs() == [3])
    await answer_sync(sync, {"c1": 0})  # a stale position: the store answers 1..4
    await eventually(lambda: "sync_done" in c.ws.kinds())
    assert c.ws.kinds() == ["event:c1:3", "event:c1:1", "event:c1:2", "event:c1:4", "sync_done"]
    push(c.conn, "c1", 4)  # 4 arriving live now: already replayed
    push(c.conn, "c1", 5)
    await eventually(lambda: 5 in c.seqs())
    assert c.seqs() == [3, 1, 2, 4, 5]


async def test_a_second_sync_does_not_replay_again() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3)
    c.conn.start_live("c1", 3)
    await answer_sync(sync, {"c1": 0}, ref="a")
    await answer_sync(sync, {"c1": 0}, ref="b")
    await eventually(lambda: c.ws.kinds().count("sync_done") == 2)
    assert c.ws.kinds() == ["event:c1:1", "event:c1:2", "event:c1:3", "sync_done", "sync_done"]
    assert [f.get("ref") for f in c.ws.frames() if f["type"] == "sync_done"] == ["a", "b"]


async def test_overlapping_syncs_release_held_events_when_the_last_ends() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3)
    c.conn.start_live("c1", 3)
    messages.sync_gate = asyncio.Event()
    first = asyncio.create_task(sync.answer(sync_frame({"c1": 1}, ref="a")))
    second = asyncio.create_task(sync.answer(sync_frame({"c1": 2}, ref="b")))
    await eventually(lambda: len(messages.called("sync")) == 1)
    await settle()
    assert c.conn._holds == {"c1": 2}  # both hold, though the second waits for the first
    push(c.conn, "c1", 4)
    messages.sync_gate.set()
    answer_a = await asyncio.wait_for(first, 2)
    answer_b = await asyncio.wait_for(second, 2)
    await write_answer(c.conn, answer_a)
    await eventually(lambda: "sync_done" in c.ws.kinds())
    await settle()
    assert c.ws.kinds() == ["event:c1:2", "event:c1:3", "sync_done"]
    assert [s for s, _ in c.conn.held["c1"]] == [4]  # still held: the second sync is not out
    await write_answer(c.conn, answer_b)
    await eventually(lambda: 4 in c.seqs())
    assert c.ws.kinds() == ["event:c1:2", "event:c1:3", "sync_done", "sync_done", "event:c1:4"]
    assert [f.get("ref") for f in c.ws.frames() if f["type"] == "sync_done"] == ["a", "b"]
    assert c.conn.held == {} and c.conn._holds == {}
    assert sync.budget.left == BUDGET


async def test_a_failed_sync_releases_holds_and_budget() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3)
    c.conn.start_live("c1", 3)
    messages.sync_gate = asyncio.Event()
    messages.sync_error = ChatError(ErrorCode.UNAVAILABLE, "messages service down")
    task = asyncio.create_task(sync.answer(sync_frame({"c1": 0, "c2": 0})))
    await eventually(lambda: len(messages.called("sync")) == 1)
    assert sync.budget.left < BUDGET  # the call's bytes are reserved
    push(c.conn, "c1", 4)
    assert [s for s, _ in c.conn.held["c1"]] == [4]
    messages.sync_gate.set()
    with pytest.raises(ChatError) as exc:
        await asyncio.wait_for(task, 2)
    assert exc.value.code == ErrorCode.UNAVAILABLE
    assert sync.budget.left == BUDGET
    assert c.conn.held == {} and c.conn._holds == {}
    assert (c.conn._held_n, c.conn._held_bytes) == (0, 0)
    await eventually(lambda: c.seqs() == [4])  # the held event went out live
    push(c.conn, "c1", 5)
    await eventually(lambda: c.seqs() == [4, 5])
    assert c.conn.last["c1"] == 5
    assert not sync._lock.locked()


async def test_a_cancelled_sync_releases_holds_and_budget() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2)
    c.conn.start_live("c1", 2)
    messages.sync_gate = asyncio.Event()  # never set
    task = asyncio.create_task(sync.answer(sync_frame({"c1": 0})))
    await eventually(lambda: len(messages.called("sync")) == 1)
    push(c.conn, "c1", 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sync.budget.left == BUDGET and c.conn.held == {}
    await eventually(lambda: c.seqs() == [3])


async def test_sync_done_carries_the_ref_truncated_and_not_found() -> None:
    c, messages, sync = setup(max_events=2)
    messages.add("c1", 1, 2, 3, 4, 5)
    messages.add("c2", 1, 2)
    await answer_sync(sync, {"c1": 0, "c2": 0, "gone": 0}, ref="r7")
    await eventually(lambda: "sync_done" in c.ws.kinds())
    assert c.ws.kinds() == ["event:c1:1", "event:c1:2", "event:c2:1", "event:c2:2", "sync_done"]
    assert c.ws.frames()[-1] == {"type": "sync_done", "truncated": ["c1"], "not_found": ["gone"], "ref": "r7"}
    assert c.ws.frames()[0] == {"type": "event", "event": event("c1", 1)}
    assert messages.called("sync") == [("u1", [("c1", 0), ("c2", 0), ("gone", 0)], 2, BUDGET // 2)]


async def test_the_replay_budget_is_held_until_the_replay_is_queued_then_returned() -> None:
    c, messages, sync = setup()
    messages.add("c1", *range(1, 11))
    for ref in ("a", "b"):
        answer = await sync.answer(sync_frame({"c1": 0}, ref=ref))
        held = BUDGET - sync.budget.left
        assert 0 < held < BUDGET // 2  # what the replay holds: its events' bytes, not the reservation
        await write_answer(c.conn, answer)
        assert sync.budget.left == BUDGET
    await eventually(lambda: c.ws.kinds().count("sync_done") == 2)
    assert c.seqs() == list(range(1, 11))  # the second replayed nothing again


async def test_a_position_beyond_the_log_does_not_mute_live_events() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2, 3)
    c.conn.start_live("c1", 3)
    await answer_sync(sync, {"c1": 99})  # a client claiming more than there is
    push(c.conn, "c1", 4)
    await eventually(lambda: c.seqs() == [4])
    assert c.ws.kinds() == ["sync_done", "event:c1:4"]


async def test_a_replay_before_the_conversation_goes_live_is_not_sent_again() -> None:
    c, messages, sync = setup()
    messages.add("c2", 1, 2, 3)
    await answer_sync(sync, {"c2": 0})  # joined over REST, not live here yet
    c.conn.start_live("c2", 2)  # the hub adds it (store was at 2 when it looked)
    push(c.conn, "c2", 3, 4)
    await eventually(lambda: 4 in c.seqs())
    assert c.ws.kinds() == ["event:c2:1", "event:c2:2", "event:c2:3", "sync_done", "event:c2:4"]


async def test_answers_write_replay_done_held_events_then_later_answers() -> None:
    c, messages, sync = setup()
    messages.add("c1", 1, 2)
    c.conn.start_live("c1", 2)
    answers = Answers(8, c.conn.push_reply, c.conn.id)
    writer = asyncio.create_task(answers.write_all(c.conn.close_after_queue))
    messages.sync_gate = asyncio.Event()
    await answers.put(asyncio.ensure_future(sync.answer(sync_frame({"c1": 0}, ref="s"))))
    await answers.put_now([F.Pong(ref="p").text()])  # a ping read after the sync frame
    await eventually(lambda: len(messages.called("sync")) == 1)
    push(c.conn, "c1", 3)
    await settle()
    assert c.ws.sent == []  # the pong waits for the sync's answer
    messages.sync_gate.set()
    await answers.end()
    await asyncio.wait_for(writer, 2)
    await eventually(lambda: len(c.ws.sent) == 5)
    assert c.ws.kinds() == ["event:c1:1", "event:c1:2", "sync_done", "event:c1:3", "pong"]
