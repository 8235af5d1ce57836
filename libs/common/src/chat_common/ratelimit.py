"""Token buckets: at most ``burst`` tokens, ``per_s`` added a second (monotonic clock); an
action takes one or is told how long until one is there. Used by the gateway's per-user
limits and the media service's upload rate."""

from __future__ import annotations

from dataclasses import dataclass

MAX_RETRY_AFTER_S = 3600.0
_EPS = 1e-6


@dataclass(frozen=True)
class Rule:
    """``burst`` tokens at most, ``per_s`` added a second; ``burst`` 0 turns the limit off."""

    burst: float
    per_s: float

    @property
    def enabled(self) -> bool:
        return self.burst > 0


class TokenBucket:
    __slots__ = ("burst", "per_s", "stamp", "tokens")

    def __init__(self, rule: Rule, now: float) -> None:
        self.burst = float(rule.burst)
        self.per_s = float(rule.per_s)
        self.tokens = self.burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_s)
            self.stamp = now

    def try_take(self, now: float, n: float = 1.0) -> float | None:
        """Take ``n`` tokens: None when taken, else seconds until ``n`` are there."""
        self._refill(now)
        if self.tokens >= n - _EPS:  # waiting exactly the retry time given always succeeds
            self.tokens = max(0.0, self.tokens - n)
            return None
        if self.per_s <= 0:
            return MAX_RETRY_AFTER_S
        return min(MAX_RETRY_AFTER_S, (n - self.tokens) / self.per_s)

    def give_back(self, now: float, n: float = 1.0) -> None:
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + n)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst
