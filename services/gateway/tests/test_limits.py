"""Token buckets, the per-user registry, the per-connection frame guard and the sync budget."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from chat_gateway.frame_guard import FrameGuard
from chat_gateway.limits import RECEIPT, SEND, TYPING, WRITE, Limits, Rule, TokenBucket, refuse, rest_kind
from chat_gateway.sync_budget import EVENT_RESERVE, SyncBudget, SyncTicket
from chat_proto.errors import ChatError, ErrorCode


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_bucket_burst_refill_and_retry_after() -> None:
    b = TokenBucket(Rule(burst=3, per_s=2.0), now=0.0)
    assert [b.try_take(0.0) for _ in range(3)] == [None, None, None]
    assert b.try_take(0.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert b.try_take(0.25) == pytest.approx(0.25)  # half a token there already
    assert b.try_take(0.5) is None
    assert b.try_take(10.0) is None and b.tokens == pytest.approx(2.0)  # capped at the burst
    b.give_back(10.0)
    b.give_back(10.0)
    assert b.tokens == 3.0 and b.full(10.0)  # never above the burst


def test_bucket_clock_going_nowhere_or_back_adds_nothing() -> None:
    b = TokenBucket(Rule(1, 1.0), now=50.0)
    assert b.try_take(50.0) is None
    assert b.try_take(49.0) is not None  # a clock that went back: no refill
    assert b.try_take(51.0) is None


def test_registry_shares_a_users_bucket_and_refunds() -> None:
    clock = Clock()
    lim = Limits({SEND: Rule(2, 1.0), TYPING: Rule(5, 1.0)}, clock=clock)
    assert lim.check("u", SEND) is None and lim.check("u", SEND) is None
    wait = lim.check("u", SEND)
    assert wait == pytest.approx(1.0)
    assert lim.check("v", SEND) is None  # another user has their own bucket
    assert lim.check("u", TYPING) is None  # another kind too
    lim.refund("u", SEND)  # a replay: the token comes back
    assert lim.check("u", SEND) is None
    assert lim.check("u", SEND) is not None
    assert lim.check("u", WRITE) is None  # no rule: unlimited


def test_registry_rule_with_zero_burst_is_off_and_enforce_raises() -> None:
    lim = Limits({SEND: Rule(0, 1.0), WRITE: Rule(1, 0.5)}, clock=Clock())
    assert all(lim.check("u", SEND) is None for _ in range(1000))
    assert len(lim) == 0
    lim.enforce("u", WRITE)
    with pytest.raises(ChatError) as exc:
        lim.enforce("u", WRITE)
    assert exc.value.code == ErrorCode.RATE_LIMITED and exc.value.retry_after_ms == 2000


def test_registry_drops_full_buckets_only() -> None:
    clock = Clock()
    lim = Limits({SEND: Rule(10, 1.0)}, clock=clock, sweep_every_s=5.0)
    for i in range(1000):
        lim.check(f"idle{i}", SEND)
    lim.check("busy", SEND)
    for _ in range(9):
        lim.check("busy", SEND)
    assert len(lim) == 1001
    clock.t += 5.0  # the idle ones are full again (1 token in 5 s... not yet for busy)
    lim.check("other", SEND)  # a check sweeps when due
    assert len(lim) == 2  # busy (5/10 tokens) and other
    assert lim.check("busy", SEND) is None
    clock.t += 60
    lim.sweep()
    assert len(lim) == 0


def test_refuse_rounds_retry_after_up() -> None:
    err = refuse(SEND, 0.0001)
    assert err.code == ErrorCode.RATE_LIMITED and err.retry_after_ms == 1
    assert refuse(SEND, 1.2345).retry_after_ms == 1235


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/v1/conversations/c1/messages", SEND),
        ("POST", "/v1/conversations/c1/messages/", SEND),
        ("PATCH", "/v1/conversations/c1/messages/5", WRITE),
        ("DELETE", "/v1/conversations/c1/messages/5", WRITE),
        ("POST", "/v1/conversations", WRITE),
        ("PUT", "/v1/conversations/c1/members/u/role", WRITE),
        ("POST", "/v1/auth/login", None),
        ("POST", "/v1/auth/refresh", None),
        ("GET", "/v1/conversations/c1/messages", None),
        ("GET", "/v1/me", None),
        ("POST", "/healthz", None),
    ],
)
def test_rest_kind(method: str, path: str, kind: str | None) -> None:
    assert rest_kind(method, path) == kind


def frame(type_: str, **kw: object) -> SimpleNamespace:
    return SimpleNamespace(type=type_, ref=kw.pop("ref", None), **kw)


def test_guard_refuses_with_retry_after_and_send_fields() -> None:
    clock = Clock()
    lim = Limits({SEND: Rule(1, 0.5), RECEIPT: Rule(1, 1.0)}, clock=clock)
    g = FrameGuard(lim, Rule(100, 100.0), abuse_max=100, abuse_window_s=10, clock=clock)
    send = frame("send", ref="r1", conv="c", client_msg_id="m")
    assert g.admit("u", send) is None
    refusal = g.admit("u", send)
    assert refusal is not None and not refusal.abusive
    assert json.loads(refusal.frame) == {
        "type": "error",
        "ref": "r1",
        "conv": "c",
        "client_msg_id": "m",
        "code": "rate_limited",
        "message": "too many messages; retry later",
        "retry_after_ms": 2000,
    }
    assert g.admit("u", frame("ping")) is None  # pings take no per-user token
    assert g.admit("u", frame("read", conv="c", seq=1)) is None
    r = g.admit("u", frame("delivered", conv="c", seq=1))  # delivered and read share a bucket
    assert r is not None and json.loads(r.frame)["conv"] == "c"


def test_guard_frames_bucket_bounds_every_frame() -> None:
    clock = Clock()
    g = FrameGuard(Limits({}, clock=clock), Rule(3, 1.0), abuse_max=100, abuse_window_s=10, clock=clock)
    assert [g.admit("u", frame("ping")) for _ in range(3)] == [None] * 3
    r = g.admit("u", frame("ping", ref="p"))
    assert r is not None and json.loads(r.frame)["retry_after_ms"] == 1000


def test_guard_abuse_more_than_max_early_refusals_within_the_window() -> None:
    clock = Clock()
    lim = Limits({TYPING: Rule(1, 0.01)}, clock=clock)  # one token per 100 s
    g = FrameGuard(lim, Rule(0, 1), abuse_max=5, abuse_window_s=10, clock=clock)
    typing = frame("typing", conv="c")
    assert g.admit("u", typing) is None
    first = g.admit("u", typing)
    assert first is not None and not first.abusive  # nothing said to wait yet: not counted
    out = []
    for _ in range(5):
        clock.t += 2.5  # before the retry time: counted; the first ones age out of 10 s
        out.append(g.admit("u", typing).abusive)  # type: ignore[union-attr]
    assert out == [False] * 5  # 4 within the last 10 s
    clock.t += 0.1
    assert [g.admit("u", typing).abusive for _ in range(3)] == [False, True, False]  # type: ignore[union-attr]


def test_guard_a_client_that_waits_retry_after_is_never_closed() -> None:
    clock = Clock()
    lim = Limits({SEND: Rule(1, 10.0)}, clock=clock)
    g = FrameGuard(lim, Rule(0, 1), abuse_max=5, abuse_window_s=10, clock=clock)
    for i in range(300):  # each new message tried once at once, then again when told
        r = g.admit("u", frame("send", conv="c", client_msg_id=f"m{i}"))
        if r is not None:
            assert not r.abusive
            clock.t += json.loads(r.frame)["retry_after_ms"] / 1000
            assert g.admit("u", frame("send", conv="c", client_msg_id=f"m{i}")) is None
        clock.t += 0.001


def test_sync_budget_reserves_worst_case_and_settles() -> None:
    budget = SyncBudget(10 * EVENT_RESERVE)
    a, b = SyncTicket(budget), SyncTicket(budget)
    assert a.reserve(200 * EVENT_RESERVE) == 10 * EVENT_RESERVE  # a call's bytes reserved before it is made
    assert b.reserve(200 * EVENT_RESERVE) == 0  # nothing left for a concurrent sync meanwhile
    a.settle(10 * EVENT_RESERVE, 1000)  # the call brought little
    assert b.reserve(3 * EVENT_RESERVE) == 3 * EVENT_RESERVE
    assert budget.left == 10 * EVENT_RESERVE - 1000 - 3 * EVENT_RESERVE
    a.release()
    b.release()
    assert budget.left == 10 * EVENT_RESERVE
