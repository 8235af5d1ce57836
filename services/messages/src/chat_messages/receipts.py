"""Receipts: the delivered/read watermarks of each member in each conversation (PROTOCOL §4).

Stored as high-water seqs on the ``members`` row (no row per message). The rules, applied
to a whole batch in ONE transaction:

- a report carries ``delivered`` and/or ``read``; ``read`` implies ``delivered``;
- values are clamped to the conversation's ``last_seq``;
- monotonic: a lower value changes nothing and sends nothing; only rows that changed
  produce a ``receipt`` frame (published after the commit on the conversation's ephemeral
  subject, relayed by gateways to every member's connections);
- reports of non-members (or for unknown conversations) are ignored silently: no leak;
- every member may report, guests included, also while the conversation is archived.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from chat_proto import ephemeral
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import ReceiptUpdate, SetReceipt
from prometheus_client import Counter

from chat_messages import permissions as perm
from chat_messages.conversations import Conversations, role_of
from chat_messages.ports import EphemeralPublisher
from chat_messages.store import Pair, Watermarks

log = logging.getLogger("chat.messages.receipts")

UPDATES = Counter(
    "chat_messages_receipt_updates_total",
    "Watermark reports applied, after coalescing per (user, conversation)",
    ["outcome"],  # changed | unchanged | ignored (not a member)
)

Report = tuple[int | None, int | None]  # (delivered, read); None: not reported


def merge(updates: Iterable[ReceiptUpdate]) -> dict[Pair, Report]:
    """The highest delivered and read reported per (conv, user)."""
    out: dict[Pair, Report] = {}
    for u in updates:
        d, r = out.get((u.conv, u.user_id), (None, None))
        out[(u.conv, u.user_id)] = (_max(d, u.delivered_seq), _max(r, u.read_seq))
    return out


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def advance(cur: Watermarks, delivered: int | None, read: int | None) -> tuple[int, int] | None:
    """The new (delivered, read) after a report, or None when nothing changes."""
    new_read = cur.read if read is None else max(cur.read, min(read, cur.last_seq))
    new_delivered = cur.delivered if delivered is None else max(cur.delivered, min(delivered, cur.last_seq))
    new_delivered = max(new_delivered, new_read)  # read implies delivered
    if (new_delivered, new_read) == (cur.delivered, cur.read):
        return None
    return new_delivered, new_read


class Receipts:
    def __init__(self, convs: Conversations, publisher: EphemeralPublisher) -> None:
        self.convs = convs
        self.store = convs.store
        self.pub = publisher

    async def apply(self, updates: Iterable[ReceiptUpdate]) -> list[ephemeral.ReceiptFrame]:
        """Apply a batch in one transaction; publish a ``receipt`` per changed row after it."""
        wanted = merge(updates)
        if not wanted:
            return []
        changes: list[tuple[Pair, int, int]] = []
        async with self.store.tx() as conn:
            current = await self.store.lock_watermarks(conn, wanted)
            for pair, (delivered, read) in wanted.items():
                cur = current.get(pair)
                new = advance(cur, delivered, read) if cur is not None else None
                if new is not None:
                    changes.append((pair, *new))
            await self.store.raise_watermarks(conn, changes)
        UPDATES.labels("ignored").inc(len(wanted) - len(current))
        UPDATES.labels("unchanged").inc(len(current) - len(changes))
        UPDATES.labels("changed").inc(len(changes))
        frames = [
            ephemeral.ReceiptFrame(conv=conv, user_id=user, delivered_seq=d, read_seq=r)
            for (conv, user), d, r in changes
        ]
        for frame in frames:
            try:
                await self.pub.publish_ephemeral(frame.conv, ephemeral.encode(frame))
            except Exception:  # stored; the frame is ephemeral and clients also see it in GET
                log.warning("receipt not published", extra={"conv": frame.conv})
        return frames

    async def set_own(self, user: str, req: SetReceipt) -> dict[str, Any]:
        """REST ``POST …/receipts``: the caller's own watermarks. Unlike the WebSocket frames
        (silently ignored), a non-member is told: 404 (403 on a public channel)."""
        if req.delivered_seq is None and req.read_seq is None:
            raise ChatError(ErrorCode.INVALID, "give delivered_seq and/or read_seq")
        async with self.store.tx() as conn:
            row, me = await self.convs.load(conn, req.conv, user)
        if me is None:
            raise (
                perm.hidden()
                if perm.kind_column(row.kind, bool(row.private)) != "public"
                else ChatError(ErrorCode.FORBIDDEN, "join the channel first to send receipts")
            )
        update = ReceiptUpdate(conv=req.conv, user_id=user, delivered_seq=req.delivered_seq, read_seq=req.read_seq)
        return {"changed": bool(await self.apply([update]))}

    async def list_for(self, user: str, conv: str) -> dict[str, Any]:
        """Every member's watermarks (``read`` in the permission table)."""
        async with self.store.tx() as conn:
            row, me = await self.convs.load(conn, conv, user)
            perm.check("read", row.kind, bool(row.private), role_of(me), bool(row.archived))
            rows = await self.store.watermarks_of(conn, conv)
        return {
            "receipts": [
                {"user_id": r.user_id, "delivered_seq": int(r.delivered_seq), "read_seq": int(r.read_seq)} for r in rows
            ]
        }
