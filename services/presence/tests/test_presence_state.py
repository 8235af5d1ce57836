"""The presence state machine: debounce, dead gateways, warm-up, parts, coalescing."""

from __future__ import annotations

from chat_presence.state import Change, PresenceState
from chat_proto.presence import GatewayReport

GRACE, DEAD, WARMUP, INTERVAL = 3.0, 2.5, 6.0, 5.0


def report(gw: str, kind: str, users: list[str] = (), gone: list[str] = (), ts: str = "t1", **kw: int) -> GatewayReport:  # type: ignore[assignment]
    return GatewayReport(
        gateway_id=gw,
        kind=kind,
        interval_s=INTERVAL,
        ts=ts,
        users=list(users),
        gone=list(gone),
        **kw,  # type: ignore[arg-type]
    )


def warm_state() -> PresenceState:
    """A state past its warm-up (time 100)."""
    return PresenceState(now=0.0, grace_s=GRACE, dead_after=DEAD, warmup_s=WARMUP)


def changes(s: PresenceState) -> list[tuple[str, str, str]]:
    return sorted((c.user_id, c.status, c.last_seen) for c in s.drain())


def test_online_at_once_offline_after_the_grace() -> None:
    s = warm_state()
    s.apply(report("g1", "delta", ["bob"], ts="t1"), 100.0)
    assert changes(s) == [("bob", "online", "t1")]
    s.apply(report("g1", "delta", gone=["bob"], ts="t2"), 101.0)
    s.tick(101.0 + GRACE - 0.01)
    assert changes(s) == []
    s.tick(101.0 + GRACE)
    assert changes(s) == [("bob", "offline", "t2")]
    assert "bob" not in s.online


def test_reconnect_within_the_grace_produces_nothing() -> None:
    s = warm_state()
    s.apply(report("g1", "delta", ["bob"]), 100.0)
    s.drain()
    s.apply(report("g1", "delta", gone=["bob"]), 101.0)
    s.tick(102.0)
    s.apply(report("g2", "delta", ["bob"], ts="t3"), 102.5)  # back, on another gateway
    s.tick(110.0)
    assert changes(s) == []
    assert s.online["bob"] == "t3"


def test_multi_device_offline_only_when_the_last_gateway_drops_the_user() -> None:
    s = warm_state()
    s.apply(report("g1", "delta", ["bob"]), 100.0)
    s.apply(report("g2", "delta", ["bob"]), 100.0)
    assert changes(s) == [("bob", "online", "t1")]
    s.apply(report("g1", "delta", gone=["bob"]), 101.0)
    s.tick(101.0 + GRACE + 1)
    assert changes(s) == []
    s.apply(report("g2", "delta", gone=["bob"], ts="t9"), 106.0)
    s.tick(106.0 + GRACE)
    assert changes(s) == [("bob", "offline", "t9")]


def test_dead_gateway_users_go_offline_unless_listed_elsewhere() -> None:
    s = warm_state()
    s.apply(report("g1", "full", ["bob", "carol"], ts="t1"), 100.0)
    s.apply(report("g2", "full", ["carol"], ts="t1"), 100.0)
    s.drain()
    s.apply(report("g2", "full", ["carol"], ts="t2"), 105.0)
    s.apply(report("g2", "full", ["carol"], ts="t3"), 110.0)
    s.tick(100.0 + DEAD * INTERVAL)  # g1 silent for exactly 2.5 intervals: not yet
    assert changes(s) == [] and "g1" in s.gateways
    s.tick(100.0 + DEAD * INTERVAL + 0.1)  # dead: no extra grace
    assert changes(s) == [("bob", "offline", "t1")]
    assert "g1" not in s.gateways and s.online.keys() == {"carol"}


def test_bye_is_a_clean_close_of_every_user_of_the_gateway() -> None:
    s = warm_state()
    s.apply(report("g1", "full", ["bob", "carol"]), 100.0)
    s.drain()
    s.apply(report("g1", "bye", ts="t5"), 101.0)
    s.apply(report("g2", "delta", ["carol"]), 102.0)  # carol reconnected elsewhere
    s.tick(101.0 + GRACE)
    assert changes(s) == [("bob", "offline", "t5")]


def test_a_full_report_replaces_the_set() -> None:
    s = warm_state()
    s.apply(report("g1", "full", ["a", "b"]), 100.0)
    assert changes(s) == [("a", "online", "t1"), ("b", "online", "t1")]
    s.apply(report("g1", "full", ["b", "c"], ts="t2"), 105.0)
    s.tick(105.0 + GRACE)
    assert changes(s) == [("a", "offline", "t2"), ("c", "online", "t2")]
    assert s.online == {"b": "t2", "c": "t2"}


def test_parts_are_applied_together_and_a_missing_part_drops_the_snapshot() -> None:
    s = warm_state()
    s.apply(report("g1", "full", ["a"], snapshot=1, part=0, parts=2), 100.0)
    assert changes(s) == []  # not complete yet
    s.apply(report("g1", "delta", ["x"]), 100.0)  # a connect between the parts
    s.apply(report("g1", "full", ["b"], snapshot=1, part=1, parts=2), 100.0)
    assert changes(s) == [("a", "online", "t1"), ("b", "online", "t1"), ("x", "online", "t1")]
    # snapshot 2 loses part 0: nothing is replaced, nobody goes offline
    s.apply(report("g1", "full", ["b"], snapshot=2, part=1, parts=2), 105.0)
    s.tick(105.0 + GRACE)
    assert changes(s) == [] and s.gateways["g1"].users == {"a", "b", "x"}


def test_warm_up_baseline_is_silent_and_no_offline_is_decided_before_it_ends() -> None:
    s = PresenceState(now=0.0, grace_s=GRACE, dead_after=DEAD, warmup_s=WARMUP)
    s.apply(report("g1", "full", ["bob", "carol"]), 1.0)  # they were online before we started
    s.apply(report("g2", "delta", ["dave"]), 1.5)  # a real connect: announced at once
    assert changes(s) == [("dave", "online", "t1")]
    s.apply(report("g1", "delta", gone=["carol"], ts="t2"), 2.0)
    s.tick(2.0 + GRACE)  # due, but still warming up
    assert changes(s) == []
    s.tick(WARMUP)
    assert changes(s) == [("carol", "offline", "t2")]


def test_stale_online_users_from_the_store_go_offline_after_warm_up() -> None:
    s = warm_state()
    s.apply(report("g1", "full", ["bob"]), 100.0)
    s.drain()
    s.stale_online({"bob": "t0", "zoe": "t0"})
    assert changes(s) == [("zoe", "offline", "t0")]


def test_opposite_changes_within_one_window_cancel() -> None:
    s = warm_state()
    s.apply(report("g1", "delta", ["bob"]), 100.0)
    s.drain()
    s.apply(report("g1", "delta", gone=["bob"]), 100.0)
    s.tick(100.0 + GRACE)  # offline pending, not drained yet
    s.apply(report("g1", "delta", ["bob"], ts="t7"), 100.0 + GRACE)  # and back online
    assert changes(s) == []
    s.requeue([Change("carol", "online", "t1")])
    assert changes(s) == [("carol", "online", "t1")]
