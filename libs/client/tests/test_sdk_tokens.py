"""Access-token refresh scheduling and rotation (chat_sdk.tokens)."""

from __future__ import annotations

import asyncio

import pytest
from chat_sdk.errors import Unauthorized, Unavailable
from chat_sdk.models import Tokens
from chat_sdk.tokens import TokenManager, refresh_delay


def pair(n: int, expires_in: int = 900, issued_at: float = 1000.0) -> Tokens:
    return Tokens(access_token=f"a{n}", refresh_token=f"r{n}", expires_in=expires_in, issued_at=issued_at)


def test_refresh_at_80_percent_of_the_lifetime() -> None:
    t = pair(0, expires_in=900, issued_at=1000.0)
    assert refresh_delay(t, now=1000.0) == pytest.approx(720.0)
    assert refresh_delay(t, now=1500.0) == pytest.approx(220.0)
    assert refresh_delay(t, now=1720.0) == 0.0
    assert refresh_delay(t, now=5000.0) == 0.0  # overdue: at once
    assert refresh_delay(t, now=1000.0, fraction=0.5) == pytest.approx(450.0)


def test_short_lifetimes_keep_a_margin_before_expiry() -> None:
    # exp is whole seconds: a 5 s token may end a second early, so not at 4.0 but 3.0
    assert refresh_delay(pair(0, expires_in=5, issued_at=0.0), now=0.0) == pytest.approx(3.0)
    assert refresh_delay(pair(0, expires_in=2, issued_at=0.0), now=0.0) == pytest.approx(1.0)
    assert refresh_delay(pair(0, expires_in=0, issued_at=0.0), now=0.0) == 0.0


class Server:
    """A refresh endpoint with rotation: each refresh token works once."""

    def __init__(self, expires_in: int = 900) -> None:
        self.n = 0
        self.spent: set[str] = set()
        self.calls = 0
        self.expires_in = expires_in
        self.clock = 1000.0
        self.fail_with: Exception | None = None

    async def refresh(self, refresh_token: str) -> Tokens:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        if refresh_token in self.spent:
            raise Unauthorized("refresh token reused", status=401)
        self.spent.add(refresh_token)
        self.n += 1
        return pair(self.n, self.expires_in, issued_at=self.clock)


async def test_rotation_keeps_the_newest_refresh_token_and_reports_it() -> None:
    srv = Server()
    seen: list[Tokens] = []
    tm = TokenManager(pair(0, issued_at=1000.0), srv.refresh, on_change=seen.append, clock=lambda: srv.clock)
    assert tm.delay() == pytest.approx(720.0) and not tm.due()
    srv.clock = 1720.0
    assert tm.due()
    assert await tm.ensure_fresh() == "a1"
    assert tm.tokens.refresh_token == "r1" and [t.refresh_token for t in seen] == ["r1"]
    assert tm.delay() == pytest.approx(720.0)  # measured from the new pair
    await tm.refresh()
    assert tm.tokens.refresh_token == "r2" and srv.spent == {"r0", "r1"}


async def test_concurrent_refreshes_share_one_request() -> None:
    srv = Server()
    tm = TokenManager(pair(0), srv.refresh, clock=lambda: srv.clock)
    stale = tm.access_token
    await asyncio.gather(*(tm.refresh(stale=stale) for _ in range(5)))
    assert srv.calls == 1 and tm.access_token == "a1"


async def test_refused_refresh_ends_the_session() -> None:
    srv = Server()
    tm = TokenManager(pair(0), srv.refresh)
    srv.spent.add("r0")  # e.g. revoked by a logout elsewhere
    with pytest.raises(Unauthorized):
        await tm.refresh()
    assert tm.dead is not None
    with pytest.raises(Unauthorized):  # no further request: the session is over
        await tm.refresh()
    assert srv.calls == 1


async def test_transient_refresh_failure_keeps_the_session() -> None:
    srv = Server()
    tm = TokenManager(pair(0), srv.refresh)
    srv.fail_with = Unavailable("gateway down")
    with pytest.raises(Unavailable):
        await tm.refresh()
    assert tm.dead is None and tm.tokens.refresh_token == "r0"
    srv.fail_with = None
    await tm.refresh()
    assert tm.tokens.refresh_token == "r1"
