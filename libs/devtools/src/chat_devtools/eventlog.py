"""Reading one conversation's events back from the event stream (CHAT_EVENTS), for checks
that what was stored was also published: the fault tests, the chaos checker."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from chat_proto import subjects


@dataclass(frozen=True)
class Published:
    seq: int  # the event's seq in its conversation
    stream_seq: int
    at: datetime


async def conv_events(js: Any, conv: str, within_s: float = 10.0) -> list[Published]:
    """Every event of ``conv`` in the stream, in stream order, read from the start with an
    ordered consumer until nothing is pending (or, bounded, ``within_s`` passed)."""
    out: list[Published] = []
    sub = await js.subscribe(subjects.evt_conv(conv), ordered_consumer=True)
    try:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except TimeoutError:
                break  # nothing (more) on the subject
            try:
                ev = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                ev = None
            if isinstance(ev, dict) and isinstance(ev.get("seq"), int):
                out.append(Published(ev["seq"], msg.metadata.sequence.stream, msg.metadata.timestamp))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out
