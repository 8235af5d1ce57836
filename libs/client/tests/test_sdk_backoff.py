"""Exponential backoff with full jitter: bounds and spread."""

from __future__ import annotations

import random
import statistics

import pytest
from chat_sdk.backoff import Backoff


def test_ceiling_doubles_up_to_the_cap() -> None:
    b = Backoff(base=0.5, cap=8.0)
    assert [b.ceiling(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert b.ceiling(10_000) == 8.0  # no overflow for huge attempt counts


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    b = Backoff(base=0.2, cap=5.0, rng=random.Random(1))
    for attempt in range(12):
        ds = [b.delay(attempt) for _ in range(500)]
        assert min(ds) >= 0.0
        assert max(ds) <= b.ceiling(attempt)
        # full jitter: spread over the whole range, not clustered at the top
        assert min(ds) < 0.1 * b.ceiling(attempt)
        assert max(ds) > 0.9 * b.ceiling(attempt)
        assert statistics.mean(ds) == pytest.approx(b.ceiling(attempt) / 2, rel=0.15)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)
