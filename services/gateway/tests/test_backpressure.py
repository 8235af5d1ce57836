"""Connection: the bounded outbound queue (4009 for live frames that do not fit, droppable
frames dropped, replies wait for room), close_now, at-most-once per conversation, and
the token-expiry close (4003)."""

from __future__ import annotations

import asyncio
import time

from chat_proto.frames import CLOSE_SLOW_CONSUMER, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED
from fakes import client, event, event_frame, eventually, settle

SLOW = (CLOSE_SLOW_CONSUMER, "slow consumer")


def push(c_conn: object, conv: str, *seqs: int) -> None:
    for s in seqs:
        c_conn.push_event(conv, s, event_frame(event(conv, s)))  # type: ignore[attr-defined]


async def test_live_frames_beyond_max_frames_close_4009_after_what_is_queued() -> None:
    c = client(max_frames=3, run=False)
    c.conn.start_live("c1", 0)
    push(c.conn, "c1", 1, 2, 3)
    assert c.conn._close is None
    push(c.conn, "c1", 4)  # the fourth does not fit
    assert c.conn._close == SLOW
    push(c.conn, "c1", 5)
    c.conn.push_live('{"type":"receipt"}')
    assert c.conn.info()["queued"] == 3  # nothing more is queued after the close
    c.start()
    await eventually(lambda: c.ws.closed)
    assert c.seqs() == [1, 2, 3]
    assert (c.ws.close_code, c.ws.close_reason) == SLOW
    await eventually(lambda: c.conn.closed.is_set())
    assert c.ws.closes == 1


async def test_live_frames_beyond_max_bytes_close_4009() -> None:
    frame = event_frame(event("c1", 1))
    c = client(max_frames=1000, max_bytes=3 * len(frame) + 5, run=False)
    c.conn.push_live("a" * len(frame))
    c.conn.push_live("b" * len(frame))
    c.conn.push_live("c" * len(frame))
    assert c.conn._close is None
    c.conn.push_live("d" * 6)  # 6 bytes more than the bound
    assert c.conn._close == SLOW
    c.conn.push_live("e")  # fits by size, but the connection is closing
    c.start()
    await eventually(lambda: c.ws.closed)
    assert c.ws.sent == ["a" * len(frame), "b" * len(frame), "c" * len(frame)]
    assert c.ws.close_code == CLOSE_SLOW_CONSUMER


async def test_a_writer_that_keeps_up_never_hits_the_bound() -> None:
    c = client(max_frames=2)
    c.conn.start_live("c1", 0)
    for s in range(1, 21):
        push(c.conn, "c1", s)
        await eventually(lambda s=s: len(c.ws.sent) == s)
    assert c.conn._close is None and not c.ws.closed
    assert c.seqs() == list(range(1, 21))


async def test_droppable_frames_are_dropped_without_closing() -> None:
    c = client(max_frames=2, run=False)
    c.conn.start_live("c1", 0)
    push(c.conn, "c1", 1)
    c.conn.push_live('{"type":"typing","n":1}', droppable=True)  # fits: 2 frames
    c.conn.push_live('{"type":"typing","n":2}', droppable=True)  # does not: dropped
    c.conn.push_live("x" * 10_000_000, droppable=True)  # too big: dropped
    assert c.conn._close is None
    assert c.conn.info()["queued"] == 2
    c.start()
    await eventually(lambda: len(c.ws.sent) == 2)
    assert c.ws.sent[1] == '{"type":"typing","n":1}'
    push(c.conn, "c1", 2)  # room again once written
    await eventually(lambda: c.seqs() == [1, 2])
    assert not c.ws.closed and c.conn._close is None


async def test_a_reply_waits_for_room_instead_of_closing() -> None:
    reply = "r" * 120
    c = client(max_frames=1, max_bytes=200, run=False)
    await c.conn.push_reply(reply + "1")
    await c.conn.push_reply(reply + "2")  # 242 bytes queued: over the bound
    third = asyncio.create_task(c.conn.push_reply(reply + "3"))
    await settle()
    assert not third.done()  # waits for the writer
    c.conn.start_live("c1", 0)
    push(c.conn, "c1", 1)  # live frames still have their own room
    assert c.conn._close is None
    c.start()
    await asyncio.wait_for(third, 2)
    await eventually(lambda: len(c.ws.sent) == 4)
    assert c.ws.sent[0] == reply + "1" and c.ws.sent[1] == reply + "2"
    assert sorted(c.ws.sent[2:]) == sorted([reply + "3", event_frame(event("c1", 1))])
    assert c.conn._close is None and not c.ws.closed


async def test_replies_behind_a_blocked_socket_never_close_4009() -> None:
    c = client(max_frames=1, max_bytes=100, blocked=True)  # the peer reads nothing
    writes = asyncio.create_task(_replies(c.conn, 10, "r" * 40))
    await eventually(lambda: c.conn._reply_bytes > 100)
    await settle()
    assert not writes.done()  # the reader is stopped, not the connection
    assert c.conn._close is None
    c.ws.gate.set()  # the peer reads again
    await asyncio.wait_for(writes, 2)
    await eventually(lambda: len(c.ws.sent) == 10)
    assert c.ws.sent == [f"{i}" + "r" * 40 for i in range(10)]
    assert not c.ws.closed


async def _replies(conn: object, n: int, body: str) -> None:
    for i in range(n):
        await conn.push_reply(f"{i}" + body)  # type: ignore[attr-defined]


async def test_a_waiting_reply_is_released_when_the_writer_ends() -> None:
    c = client(max_bytes=10, blocked=True)
    await c.conn.push_reply("x" * 20)
    await eventually(lambda: c.conn.info()["queued"] == 0)  # the writer holds it, blocked
    await c.conn.push_reply("y" * 20)
    waiting = asyncio.create_task(c.conn.push_reply("z"))
    await settle()
    assert not waiting.done()
    await c.stop()  # the session gives up on the writer (ws.Session.run)
    await asyncio.wait_for(waiting, 2)  # the reader does not wait forever
    assert c.conn.closed.is_set()


async def test_a_close_releases_a_reply_waiting_for_room() -> None:
    c = client(max_bytes=10, blocked=True)
    await c.conn.push_reply("x" * 20)
    await eventually(lambda: c.conn.info()["queued"] == 0)  # the writer holds it, blocked
    await c.conn.push_reply("y" * 20)
    waiting = asyncio.create_task(c.conn.push_reply("z"))
    await settle()
    assert not waiting.done()
    c.conn.close_after_queue(4009, "slow consumer")  # the writer is still blocked
    await asyncio.wait_for(waiting, 2)
    assert not c.conn.closed.is_set()
    await c.stop()


async def test_held_sync_events_count_against_the_same_bound() -> None:
    c = client(max_frames=3, run=False)
    c.conn.start_live("c1", 0)
    c.conn.start_live("c2", 0)
    push(c.conn, "c1", 1, 2)  # two live frames queued
    c.conn.begin_replay("c2")
    push(c.conn, "c2", 1)  # one held: three in all
    assert c.conn._close is None and c.conn.held["c2"] == [(1, event_frame(event("c2", 1)))]
    push(c.conn, "c2", 2)  # a fourth, held: over the bound
    assert c.conn._close == SLOW
    c.start()
    await eventually(lambda: c.ws.closed)
    assert c.ws.kinds() == ["event:c1:1", "event:c1:2"]


async def test_releasing_held_events_over_the_bound_closes_4009() -> None:
    c = client(max_frames=100, max_bytes=10_000, run=False)
    c.conn.start_live("c1", 0)
    c.conn.begin_replay("c1")
    push(c.conn, "c1", 1, 2, 3)
    assert (c.conn._held_n, c.conn._live_n) == (3, 0)
    c.conn.end_replay("c1", 0)
    assert (c.conn._held_n, c.conn._live_n) == (0, 3)
    assert c.conn._held_bytes == 0 and c.conn._live_bytes == 3 * len(event_frame(event("c1", 1)))
    c.start()
    await eventually(lambda: c.seqs() == [1, 2, 3])
    assert c.conn._live_n == 0 and c.conn._live_bytes == 0


async def test_close_now_drops_the_queue() -> None:
    c = client(run=False)
    c.conn.start_live("c1", 0)
    push(c.conn, "c1", 1, 2, 3)
    await c.conn.push_reply('{"type":"pong"}')
    c.conn.close_now(CLOSE_UNAUTHORIZED, "unauthorized")
    c.conn.push_live('{"type":"receipt"}')  # nothing more after it
    c.start()
    await eventually(lambda: c.ws.closed)
    assert c.ws.sent == []
    assert (c.ws.close_code, c.ws.close_reason) == (CLOSE_UNAUTHORIZED, "unauthorized")


async def test_close_after_queue_writes_what_is_queued_first() -> None:
    c = client(run=False)
    c.conn.start_live("c1", 0)
    push(c.conn, "c1", 1, 2)
    c.conn.close_after_queue(1000, "bye")
    c.conn.close_after_queue(CLOSE_SLOW_CONSUMER, "later")  # the first close wins
    c.start()
    await eventually(lambda: c.ws.closed)
    assert c.seqs() == [1, 2]
    assert (c.ws.close_code, c.ws.close_reason) == (1000, "bye")


async def test_events_at_or_below_last_are_not_sent_twice() -> None:
    c = client()
    c.conn.start_live("c1", 5)  # 1..5 are history
    c.conn.start_live("c2", 0)
    push(c.conn, "c1", 3, 5, 6, 6, 4, 7, 7)
    push(c.conn, "c2", 1, 1)
    await eventually(lambda: len(c.ws.sent) == 3)
    await settle()
    assert c.ws.kinds() == ["event:c1:6", "event:c1:7", "event:c2:1"]
    assert c.conn.last == {"c1": 7, "c2": 1}
    c.conn.stop_live("c1")
    assert "c1" not in c.conn.convs and "c1" not in c.conn.last


async def test_a_writer_whose_socket_fails_ends_and_marks_the_connection_closed() -> None:
    c = client(run=False)

    async def broken(_data: str) -> None:
        raise ConnectionResetError("peer gone")

    c.ws.send_text = broken  # type: ignore[method-assign]
    c.conn.push_live("x")
    c.start()
    await asyncio.wait_for(c.conn.closed.wait(), 2)
    assert c.writer is not None and c.writer.done()


# --- token expiry -------------------------------------------------------------------------------
async def test_expire_at_closes_4003_when_the_token_expires() -> None:
    c = client()
    started = time.time()
    c.conn.expire_at(started + 0.05)
    c.conn.start_live("c1", 0)
    push(c.conn, "c1", 1)
    await eventually(lambda: c.ws.closed)
    assert time.time() - started >= 0.05 * 0.9
    assert (c.ws.close_code, c.ws.close_reason) == (CLOSE_TOKEN_EXPIRED, "token expired")
    assert c.seqs() == [1]


async def test_a_later_expire_at_moves_the_deadline() -> None:
    c = client()
    started = time.time()
    c.conn.expire_at(started + 0.05)
    c.conn.expire_at(started + 0.25)  # re-authenticated in place
    await eventually(lambda: c.ws.closed)
    assert time.time() - started >= 0.25 * 0.9  # the first deadline did not fire
    assert c.ws.close_code == CLOSE_TOKEN_EXPIRED
    assert c.ws.closes == 1


async def test_an_expiry_in_the_past_closes_behind_the_queue() -> None:
    c = client(run=False)
    c.conn.push_live("a")
    c.conn.expire_at(time.time() - 10)
    await settle()
    c.conn.push_live("b")  # closing: not queued
    c.start()
    await eventually(lambda: c.ws.closed)
    assert c.ws.sent == ["a"]
    assert c.ws.close_code == CLOSE_TOKEN_EXPIRED
