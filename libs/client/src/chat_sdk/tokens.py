"""Access-token lifetime: when to refresh, and refreshing with rotation.

The access token is refreshed at ``fraction`` (default 80 %) of the server's ``expires_in``,
measured from when the pair was received, but never later than ``margin`` seconds before it
expires (the JWT's ``exp`` is whole seconds, so a short-lived token may end up to a second
before ``issued_at + expires_in``). Every refresh rotates the refresh token: the newest one
is always kept (and handed to ``on_change`` so the app can persist it). A refused refresh
(401) ends the session: it raises :class:`~chat_sdk.errors.Unauthorized` from then on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from chat_sdk.errors import Unauthorized
from chat_sdk.models import Tokens

# refresh_token -> new pair (raises Unauthorized when refused)
Refresher = Callable[[str], Awaitable[Tokens]]


def refresh_delay(tokens: Tokens, now: float, fraction: float = 0.8, max_margin: float = 2.0) -> float:
    """Seconds from ``now`` until ``tokens`` should be refreshed (0 when due already).

    ``fraction`` of the lifetime, but at least ``min(max_margin, lifetime / 2)`` seconds
    before the end of it.
    """
    ttl = max(0.0, float(tokens.expires_in))
    margin = min(max_margin, ttl / 2)
    at = tokens.issued_at + min(fraction * ttl, ttl - margin)
    return max(0.0, at - now)


class TokenManager:
    def __init__(
        self,
        tokens: Tokens,
        refresher: Refresher,
        *,
        fraction: float = 0.8,
        on_change: Callable[[Tokens], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < fraction < 1:
            raise ValueError("fraction must be in (0, 1)")
        self.tokens = tokens
        self._refresher = refresher
        self.fraction = fraction
        self._on_change = on_change
        self._clock = clock
        self._lock = asyncio.Lock()
        self.refreshes = 0
        #: set once a refresh was refused: the session is over
        self.dead: Unauthorized | None = None

    @property
    def access_token(self) -> str:
        return self.tokens.access_token

    def delay(self) -> float:
        """Seconds until the next refresh is due."""
        return refresh_delay(self.tokens, self._clock(), self.fraction)

    def due(self) -> bool:
        return self.delay() <= 0

    def expired(self) -> bool:
        """The access token is (about to be) unusable: within a second of its end."""
        t = self.tokens
        return self._clock() >= t.issued_at + t.expires_in - 1.0

    async def refresh(self, *, stale: str | None = None) -> Tokens:
        """Exchange the refresh token for a new pair and keep it.

        ``stale``: the access token the caller found wanting; if the pair changed since
        (another task refreshed meanwhile) that newer pair is returned without a request.
        Concurrent callers share one request.
        """
        if self.dead is not None:
            raise self.dead
        seen = stale if stale is not None else self.tokens.access_token
        async with self._lock:
            if self.dead is not None:
                raise self.dead
            if self.tokens.access_token != seen:
                return self.tokens
            try:
                new = await self._refresher(self.tokens.refresh_token)
            except Unauthorized as err:
                self.dead = Unauthorized(f"session over: refresh refused ({err.message})", status=err.status)
                raise self.dead from err
            if new.user is None and self.tokens.user is not None:
                new.user = self.tokens.user
            self.tokens = new
            self.refreshes += 1
        if self._on_change is not None:
            self._on_change(new)
        return new

    async def ensure_fresh(self) -> str:
        """The access token, refreshed first if it is due."""
        if self.due():
            await self.refresh()
        return self.tokens.access_token
