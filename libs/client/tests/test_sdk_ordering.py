"""The ordering / de-dup / gap buffer (chat_sdk.ordering): pure, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass

from chat_sdk.ordering import ConvOrder, Sequencer


@dataclass(frozen=True)
class Ev:
    conv: str
    seq: int


def seqs(evs: list[Ev]) -> list[int]:
    return [e.seq for e in evs]


def test_in_order_events_are_delivered_at_once() -> None:
    o: ConvOrder[Ev] = ConvOrder(0)
    assert seqs(o.offer(Ev("c", 1))) == [1]
    assert seqs(o.offer(Ev("c", 2))) == [2]
    assert o.last == 2 and o.gap() is None


def test_duplicates_are_dropped_delivered_or_held() -> None:
    s: Sequencer[Ev] = Sequencer({"c": 0})
    assert seqs(s.offer(Ev("c", 1))) == [1]
    assert s.offer(Ev("c", 1)) == []  # already delivered
    assert s.offer(Ev("c", 3)) == []  # held
    assert s.offer(Ev("c", 3)) == []  # held twice: still once
    assert seqs(s.offer(Ev("c", 2))) == [2, 3]
    assert s.offer(Ev("c", 0)) == []
    assert s.duplicates == 3


def test_gap_is_held_and_reported_until_filled() -> None:
    o: ConvOrder[Ev] = ConvOrder(4)
    assert o.offer(Ev("c", 7), now=10.0) == []
    assert o.offer(Ev("c", 6), now=11.0) == []
    assert o.gap() == (4, 6)
    assert o.gap_since == 10.0  # the first held event started the wait
    assert seqs(o.offer(Ev("c", 5))) == [5, 6, 7]
    assert o.gap() is None and o.gap_since is None


def test_skip_to_gives_up_on_a_missing_range() -> None:
    o: ConvOrder[Ev] = ConvOrder(1)
    o.offer(Ev("c", 4))
    o.offer(Ev("c", 5))
    o.offer(Ev("c", 9), now=1.0)
    assert seqs(o.skip_to(4, now=2.0)) == [4, 5]
    assert o.gap() == (5, 9) and o.gap_since == 2.0  # the next gap waits from now
    assert o.offer(Ev("c", 3)) == []  # below the skip: never delivered late


def test_unknown_conversation_starts_at_its_first_event() -> None:
    s: Sequencer[Ev] = Sequencer()
    assert seqs(s.offer(Ev("new", 17))) == [17]  # e.g. our own member_joined
    assert seqs(s.offer(Ev("new", 18))) == [18]
    assert s.positions() == {"new": 18}
    s.start("new", 0)  # already known: unchanged
    assert s.positions() == {"new": 18}


def test_conversations_are_independent() -> None:
    s: Sequencer[Ev] = Sequencer({"a": 0, "b": 10})
    assert s.offer(Ev("a", 2)) == []
    assert seqs(s.offer(Ev("b", 11))) == [11]
    assert s.gap("a") == (0, 2) and s.gap("b") is None
    s.forget("a")
    assert not s.known("a") and s.positions() == {"b": 11}


def test_any_arrival_order_with_repeats_delivers_each_seq_once_in_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 40)
        arrivals = [Ev("c", i) for i in range(1, n + 1)]
        arrivals += rng.choices(arrivals, k=rng.randint(0, n))
        rng.shuffle(arrivals)
        s: Sequencer[Ev] = Sequencer({"c": 0})
        out = s.offer_all(arrivals)
        assert seqs(out) == list(range(1, n + 1))
        assert s.duplicates == len(arrivals) - n
