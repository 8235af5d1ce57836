"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
Jitter"): the n-th retry waits a uniformly random time in ``[0, min(cap, base * 2**n)]``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait before retry number ``attempt`` (0-based)."""
        if attempt >= 62:  # 2**62 * base is far beyond any cap
            return self.cap
        return float(min(self.cap, self.base * 2.0 ** max(0, attempt)))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, self.ceiling(attempt))
