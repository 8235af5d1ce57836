"""Admission of sends (admission.py): the per-gateway bound adapts to the store's latency
(slow start, additive increase, proportional decrease) and keeps no room that was not used;
per-connection bounds are fixed; refusals are ``unavailable`` with a retry time, at once."""

from __future__ import annotations

import pytest
from chat_gateway.admission import REFUSED, Admission, ConnectionSends
from chat_proto.errors import ChatError, ErrorCode


def refused(reason: str) -> float:
    return REFUSED.labels(reason)._value.get()


def test_bound_refuses_at_once_with_a_retry_time() -> None:
    a = Admission(max_inflight=3, min_inflight=1, target_s=0.2, clock=lambda: 0.0)
    before = refused("gateway")
    for _ in range(3):
        a.enter()
    with pytest.raises(ChatError) as info:
        a.enter()
    assert info.value.code == ErrorCode.UNAVAILABLE and info.value.retry_after_ms == 200
    assert refused("gateway") == before + 1
    a.leave(0.01)
    a.enter()  # room again


def fill(a: Admission, n: int) -> None:
    for _ in range(n):
        a.enter()


def test_limit_shrinks_in_proportion_when_the_store_is_slow_and_grows_back() -> None:
    t = [0.0]
    a = Admission(max_inflight=100, min_inflight=10, target_s=0.2, clock=lambda: t[0], idle_limit=100)
    assert a.limit == 100
    fill(a, 100)
    a.leave(0.4)  # twice the target: the bound halves (what would have kept the target)
    assert a.limit == 50
    a.leave(0.4)
    assert a.limit == 50  # at most once per target
    t[0] += 0.25
    a.leave(0.22)  # just over the target: a quarter off at least
    assert a.limit == 37.5
    for _ in range(10):
        t[0] += 0.25
        a.leave(5.0)
    assert a.limit == 10  # never below the minimum
    while a.inflight:
        a.leave(None)
    fill(a, 10)
    a.leave(0.15)  # between half the target and the target: +1 per limit answers
    assert a.limit == 10.1
    a.leave(0.05)  # well within: +1 per answer (slow start)
    assert a.limit == 11.1
    before = a.limit
    a.enter()
    a.leave(None)  # failed before reaching the store: says nothing
    assert a.limit == before


def test_slow_start_doubles_per_round_trip_while_the_room_is_used() -> None:
    a = Admission(max_inflight=1000, min_inflight=4, target_s=0.2, clock=lambda: 0.0, idle_limit=8)
    assert a.limit == 8  # a new gateway does not admit max_inflight at once
    for _ in range(4):  # four round trips, each filling the bound and answered fast
        n = int(a.limit)
        fill(a, n - a.inflight)
        for _ in range(n):
            a.leave(0.01)
    assert a.limit == 128


def test_unused_room_is_not_kept() -> None:
    """Quiet for a while, then a burst: the bound is what was used lately, not max_inflight."""
    t = [0.0]
    a = Admission(max_inflight=2000, min_inflight=16, target_s=0.25, clock=lambda: t[0], idle_limit=32)
    for _ in range(5):  # a busy spell: hundreds in flight, answered fast
        fill(a, int(a.limit) - a.inflight)
        while a.inflight:
            a.leave(0.01)
    busy = a.limit
    assert busy > 600
    for _ in range(30 * 50):  # then 30 s with one send at a time
        t[0] += 0.02
        a.enter()
        a.leave(0.01)
    assert a.limit == 32  # twice the recent peak (1) is below the idle bound
    with pytest.raises(ChatError):
        fill(a, 33)


def test_connection_bound() -> None:
    c = ConnectionSends(2)
    before = refused("connection")
    c.enter(100)
    c.enter(100)
    with pytest.raises(ChatError) as info:
        c.enter(100)
    assert info.value.retry_after_ms == 100 and refused("connection") == before + 1
    c.leave()
    c.enter(100)


def test_target_follows_the_unloaded_latency() -> None:
    t = [0.0]
    a = Admission(
        max_inflight=100, min_inflight=10, target_s=0.25, clock=lambda: t[0], factor=4, floor_s=0.02, idle_limit=100
    )
    assert a.target_now() == 0.25  # nothing seen yet: the configured target
    a.enter()
    a.leave(0.01)  # the store answers in 10 ms when nothing waits
    assert a.target_now() == 0.04  # 4 x the lowest latency seen
    a.enter()
    a.leave(0.1)  # 100 ms is now slow: the bound shrinks
    assert a.limit == 40
    a.enter()
    a.leave(0.001)
    assert a.target_now() == 0.02  # never below the floor
    for _ in range(31):  # 5 minutes later only what was seen since counts
        t[0] += 10.0
        a.enter()
        a.leave(0.5)
    assert a.target_now() == 0.25  # capped by the configured target


def test_the_default_floor_leaves_batch_cycles_alone() -> None:
    """Below capacity a batched store answers between a few ms and a few commit cycles: a
    send of 40 ms after one of 3 ms is not a sign of overload and shrinks nothing."""
    a = Admission(max_inflight=100, min_inflight=10, target_s=0.25, clock=lambda: 0.0, idle_limit=100)
    assert Admission.FLOOR_S == 0.1
    fill(a, 100)
    a.leave(0.003)
    assert a.target_now() == 0.1
    for _ in range(50):
        a.leave(0.04)
    assert a.limit == 100
    a.leave(0.2)  # five commit cycles: slow
    assert a.limit == 50
    assert Admission(10, 1, target_s=0.05).target_now() == 0.05  # a target below the floor wins
    assert Admission(10, 1, target_s=0.05).floor == 0.05


def test_latencies_seen_while_refusing_do_not_raise_the_target() -> None:
    """Past capacity every send waits in a queue (this gateway's, or behind other gateways'
    sends): while this gateway refuses, what it sees is a queue, not the store."""
    t = [0.0]
    a = Admission(max_inflight=4, min_inflight=1, target_s=0.25, clock=lambda: t[0], factor=4, floor_s=0.02)
    a.enter()
    a.leave(0.01)
    assert a.target_now() == 0.04
    for _ in range(600):  # ten minutes in which the bound is full in every second
        t[0] += 0.5
        a.refusing()
        t[0] += 0.5
        a.enter()
        a.leave(0.15)  # little in flight here, yet slow: waiting behind other gateways' sends
    assert a.target_now() == 0.04
    t[0] += 2.0  # quiet again
    for _ in range(31):
        t[0] += 10.0
        a.enter()
        a.leave(0.03)
    assert a.target_now() == 0.12


def test_the_gateways_own_delay_counts() -> None:
    """A gateway short of CPU reads frames and writes answers late: each answer is judged by
    the store's latency plus twice the event loop's recent lag."""
    a = Admission(max_inflight=100, min_inflight=10, target_s=0.25, clock=lambda: 0.0, idle_limit=100)
    fill(a, 100)
    a.leave(0.005)
    assert a.target_now() == 0.1
    a.loop_lag(0.08)
    a.leave(0.02)  # 20 ms at the store, but 180 ms for the client
    assert a.limit == pytest.approx(100 * 0.1 / 0.18)
    for _ in range(5):
        a.loop_lag(0.0)
    assert a.lag < 0.003  # halved at each quieter measure
