"""The outbound bound of one connection also covers events held back by sync replays."""

from __future__ import annotations

from typing import Any, cast

from chat_gateway.connection import Connection
from chat_proto.frames import CLOSE_SLOW_CONSUMER


def ev(conv: str, seq: int, size: int = 10) -> str:
    return "x" * size


def test_held_events_of_all_conversations_count_against_one_bound() -> None:
    conn = Connection(cast(Any, None), max_frames=10, max_bytes=10_000)
    convs = [f"c{i}" for i in range(5)]
    for c in convs:
        conn.start_live(c, 0)
        conn.begin_replay(c)
    for seq in range(1, 3):  # 2 held per conversation: 10 in all, at the bound
        for c in convs:
            conn.push_event(c, seq, ev(c, seq))
    assert conn._close is None
    conn.push_event("c0", 3, ev("c0", 3))  # one more anywhere: slow consumer
    assert conn._close == (CLOSE_SLOW_CONSUMER, "slow consumer")


def test_held_and_live_share_the_bound_and_release_keeps_counts() -> None:
    conn = Connection(cast(Any, None), max_frames=100, max_bytes=1000)
    conn.start_live("a", 0)
    conn.start_live("b", 0)
    conn.begin_replay("a")
    for seq in range(1, 7):
        conn.push_event("a", seq, ev("a", seq, 100))  # 600 bytes held
    conn.push_live("y" * 300, droppable=True)  # fits: 900
    conn.push_live("y" * 200, droppable=True)  # would be 1100: dropped, no close
    assert conn._close is None
    conn.end_replay("a", replayed_to=2)  # seqs 1, 2 came with the replay: 4 held go live
    assert (conn._held_n, conn._held_bytes) == (0, 0)
    assert (conn._live_n, conn._live_bytes) == (5, 700)
    conn.push_event("b", 1, ev("b", 1, 301))  # 1001 bytes: an event that does not fit
    assert conn._close == (CLOSE_SLOW_CONSUMER, "slow consumer")
