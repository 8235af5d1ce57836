"""Timestamps on the wire: RFC 3339 UTC with milliseconds, e.g. 2026-11-27T17:22:07.123Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def now() -> datetime:
    return datetime.now(UTC)


def format_ts(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def epoch_ms(dt: datetime) -> int:
    """Whole milliseconds since the epoch, truncated exactly as ``format_ts`` truncates
    (integer arithmetic: no float rounding at the millisecond boundary)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // _MS


def now_ts() -> str:
    return format_ts(now())
