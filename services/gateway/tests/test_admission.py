"""Admission of sends (admission.py): the per-gateway bound adapts to the store's latency
(additive increase, multiplicative decrease); per-connection bounds are fixed; refusals are
``unavailable`` with a retry time, at once."""

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


def test_limit_shrinks_when_the_store_is_slow_and_grows_back() -> None:
    t = [0.0]
    a = Admission(max_inflight=100, min_inflight=10, target_s=0.2, clock=lambda: t[0])
    for _ in range(50):  # slow answers: a quarter off at most once per target
        a.enter()
        a.leave(1.0)
    assert a.limit == 75
    for _ in range(20):
        t[0] += 0.25
        a.enter()
        a.leave(1.0)
    assert a.limit == 10  # never below the minimum
    for _ in range(10 * 20):  # fast answers: +1 per limit answers
        a.enter()
        a.leave(0.01)
    assert 20 < a.limit < 25  # d(limit)/d(answers) = 1/limit: sqrt(10² + 2·200) ≈ 22
    before = a.limit
    a.enter()
    a.leave(None)  # failed before reaching the store: says nothing
    assert a.limit == before and a.inflight == 0


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
    a = Admission(max_inflight=100, min_inflight=10, target_s=0.25, clock=lambda: t[0], factor=4, floor_s=0.02)
    assert a.target_now() == 0.25  # nothing seen yet: the configured target
    a.enter()
    a.leave(0.01)  # the store answers in 10 ms when nothing waits
    assert a.target_now() == 0.04  # 4 x the lowest latency seen
    a.enter()
    a.leave(0.1)  # 100 ms is now slow: the bound shrinks
    assert a.limit == 75
    a.enter()
    a.leave(0.001)
    assert a.target_now() == 0.02  # never below the floor
    t[0] += 25.0  # two windows later only what was seen since counts
    a.enter()
    a.leave(0.5)
    assert a.target_now() == 0.25  # capped by the configured target


def test_the_default_floor_leaves_batch_cycles_alone() -> None:
    """Below capacity a batched store answers between a few ms and a few commit cycles: a
    send of 40 ms after one of 3 ms is not a sign of overload and shrinks nothing."""
    a = Admission(max_inflight=100, min_inflight=10, target_s=0.25, clock=lambda: 0.0)
    assert Admission.FLOOR_S == 0.1
    a.enter()
    a.leave(0.003)
    assert a.target_now() == 0.1
    for _ in range(50):
        a.enter()
        a.leave(0.04)
    assert a.limit == 100
    a.enter()
    a.leave(0.2)  # five commit cycles: slow
    assert a.limit == 75
    assert Admission(10, 1, target_s=0.05).target_now() == 0.05  # a target below the floor wins
    assert Admission(10, 1, target_s=0.05).floor == 0.05
