"""Bounds on the wire: every integer and key a client or a peer can send is checked at the
edge against what the store (and the bus) can hold, so out-of-range input is ``invalid`` /
422, never a 500 and never a command that fails inside a write batch.

- A seq (``reply_to``, ``before``/``after``, sync positions, receipts, path ``{seq}``) is
  0..``MAX_SEQ``: seqs are stored in 32-bit integer columns.
- Any other integer (``limit``, sizes) must fit in int64; a ``limit`` within int64 but
  above its page maximum is clamped (history 200), as PROTOCOL §3 says.
- In JSON bodies and frames an integer must be a JSON integer: ``"5"``, ``5.0`` and
  ``true`` are refused (``strict``). Query and path parameters are text and are parsed.
- A ``client_msg_id`` has no control characters: it is stored (PostgreSQL text cannot
  hold NUL) and travels in the ``Nats-Msg-Id`` header (a line break would end it).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Seqs are stored in 32-bit integer columns (both backends); larger values cannot name an event.
MAX_SEQ = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# JSON bodies, frames and bus payloads.
Seq = Annotated[int, Field(strict=True, ge=0, le=MAX_SEQ)]
"""A position in a conversation's log: 0 is "before the first event"."""
SeqRef = Annotated[int, Field(strict=True, ge=1, le=MAX_SEQ)]
"""The seq of an existing event (``reply_to``)."""
Int64 = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX)]
Size = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]


ClientMsgId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
