"""The revocation deny-list and the closing of a revoked user's local connections."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from chat_gateway.connection import Connection
from chat_gateway.revocations import DenyList, Revocations, epoch
from chat_proto.auth_api import UserRevoked
from chat_proto.frames import CLOSE_UNAUTHORIZED
from chat_proto.timefmt import epoch_ms, format_ts


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_deny_list_refuses_tokens_issued_up_to_the_revocation() -> None:
    clock = Clock(1000.0)
    deny = DenyList(keep_s=960, clock=clock)
    assert deny.add("u1", 999.5)
    assert not deny.add("u1", 999.5) and not deny.add("u1", 10.0)  # not news
    assert deny.refused("u1", 999) and deny.refused("u1", 900)
    assert not deny.refused("u1", 1000)  # issued after it (a login after reactivation)
    assert not deny.refused("u2", 0)
    assert deny.add("u1", 1001.0) and deny.refused("u1", 1001)  # deactivated again
    clock.t = 1001.0 + 960
    assert not deny.refused("u1", 1000) and len(deny) == 0  # nothing it refuses is unexpired
    assert not deny.add("old", clock.t - 961)  # stale on arrival


def test_deny_list_compares_milliseconds_exactly() -> None:
    """Access tokens carry ``iat`` in milliseconds (a float) and revocations carry
    milliseconds (RFC 3339): a token of the revocation's millisecond is refused, one of
    the next millisecond is not, for any instant (no float rounding at the boundary)."""
    rng = random.Random(9)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        revoked = start + timedelta(microseconds=rng.randrange(10**15))
        deny = DenyList(keep_s=10**9, clock=lambda: 0.0)
        assert deny.add("u", epoch(format_ts(revoked)))
        ms = epoch_ms(revoked)
        assert deny.refused("u", ms / 1000) and not deny.refused("u", (ms + 1) / 1000), revoked


def test_deny_list_expire() -> None:
    clock = Clock(5000.0)
    deny = DenyList(keep_s=100, clock=clock)
    deny.add("a", 4950)
    deny.add("b", 4990)
    clock.t = 5060
    deny.expire()
    assert len(deny) == 1 and deny.refused("b", 4990)


def _conn(user: str, iat: float) -> Connection:
    conn = Connection(cast(Any, None), 10, 1000)
    conn.user, conn.issued_at = user, iat
    return conn


def test_revocation_closes_only_the_users_older_connections() -> None:
    now = datetime.now(UTC)
    at = epoch(format_ts(now))
    old1, old2 = _conn("u1", at - 5), _conn("u1", int(at))
    newer = _conn("u1", int(at) + 1)  # re-authenticated after a reactivation
    other = _conn("u2", at - 5)
    hub = SimpleNamespace(users={"u1": {old1, old2, newer}, "u2": {other}})
    revs = Revocations(cast(Any, None), cast(Any, None), cast(Any, hub), resync_s=30)
    revs._apply(UserRevoked(user_id="u1", revoked_at=format_ts(now)))
    assert old1._close == (CLOSE_UNAUTHORIZED, "account deactivated") and old2._close == old1._close
    assert newer._close is None and other._close is None
    assert revs.refused("u1", int(at)) and not revs.refused("u2", 0)
    old1._close = None
    revs._apply(UserRevoked(user_id="u1", revoked_at=format_ts(now)))  # a resync repeats it
    assert old1._close is None
