"""COPY loader for bench/history.py: N ``message`` events into ONE conversation, written
straight into the messages service's PostgreSQL database (not through the API).

Every column the service reads is filled as the service fills it (``store.event_row``):
RFC 3339 millisecond timestamps, one ``client_msg_id`` per event (unique per sender, as the
unique key ``uq_events_send_key`` requires; zero-padded, so that the load appends to that
index instead of splitting pages all over it), bodies of 12-400 characters, a ``reply_to`` on
every 40th message, ``deleted`` false, the JSON columns the JSON value ``null`` (as the
service stores an absent value). The conversation's counter
(``conversations.last_seq``) moves with the rows: each chunk is ONE transaction that locks
the conversation row (as ``Store.allocate`` does), reads ``last_seq``, COPYs the next seqs
and sets ``last_seq`` to the last of them, so a ``send`` afterwards (or even meanwhile)
gets the next seq.

Optionally (``other_convs`` > 0) every chunk also holds ``other_per_event`` events of that
many other conversations per event of the big one, interleaved row by row, so that one
page of the big conversation is spread over many heap pages as in a busy shared table.

Bounded: stops with an error after ``timeout_s``; prints progress after every chunk.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

COLUMNS = (
    "conv_id",
    "seq",
    "kind",
    "sender",
    "ts",
    "client_msg_id",
    "body",
    "attachments",
    "reply_to",
    "target",
    "user_id",
    "role",
    "deleted",
    "changes",
)
# What the service writes for an absent attachments/changes: SQLAlchemy's JSON type stores
# Python None as the JSON value null (not SQL NULL), and every read decodes it.
NULL = "null"
WORDS = (
    "the quick brown fox jumps over a lazy dog while the release train waits at platform nine "
    "and somebody asks whether the migration ran on staging before lunch or after the standup"
).split()


def bodies(n: int = 256) -> list[str]:
    """``n`` message texts of 12..400 characters (most short, a few long)."""
    out = []
    for i in range(n):
        length = 12 + (i * 37) % 120 if i % 8 else 120 + (i * 53) % 280
        words: list[str] = []
        j = i
        while sum(len(w) + 1 for w in words) < length:
            words.append(WORDS[j % len(WORDS)])
            j = j * 7 + 3
        out.append(" ".join(words)[:length].strip() or "hello")
    return out


@dataclass
class LoadResult:
    first_seq: int
    last_seq: int
    rows: int  # of the big conversation
    other_rows: int
    seconds: float
    vacuum_s: float


class Loader:
    def __init__(
        self,
        dsn: str,
        conv: str,
        senders: Sequence[str],
        *,
        chunk: int = 250_000,
        other_convs: Sequence[str] = (),
        other_per_event: int = 0,
    ) -> None:
        self.dsn, self.conv, self.senders = dsn, conv, list(senders)
        self.chunk = chunk
        self.other_convs = list(other_convs)
        self.other_per_event = other_per_event if other_convs else 0
        self.bodies = bodies()
        self.run_tag = uuid.uuid4().hex[:6]  # client_msg_ids unique across loads
        # A year of history before now, one event every ~3 s (timestamps only move forwards).
        self.t0_ms = int((datetime.now(UTC) - timedelta(days=365)).timestamp() * 1000)
        self._minute, self._prefix = -1, ""

    def _ts(self, i: int) -> str:
        """RFC 3339 with milliseconds (``chat_proto.timefmt.format_ts``) of event ``i``;
        the date and minute formatted once per minute."""
        ms = self.t0_ms + i * 3_137
        minute, rest = divmod(ms, 60_000)
        if minute != self._minute:
            self._minute = minute
            self._prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
        return f"{self._prefix}{rest // 1000:02d}.{rest % 1000:03d}Z"

    def _rows(self, first: int, n: int, other_next: dict[str, int]) -> Iterator[tuple[Any, ...]]:
        conv, senders, texts = self.conv, self.senders, self.bodies
        ns, nb, tag = len(senders), len(texts), self.run_tag
        others, k = self.other_convs, self.other_per_event
        for seq in range(first, first + n):
            reply = seq - 3 if seq % 40 == 0 and seq > 3 else None
            yield (conv, seq, "message", senders[seq % ns], self._ts(seq), f"h{tag}-{seq:010d}",
                   texts[seq % nb], NULL, reply, None, None, None, False, NULL)  # fmt: skip
            for j in range(k):
                oc = others[(seq * k + j) % len(others)]
                s = other_next[oc]
                other_next[oc] = s + 1
                yield (oc, s, "message", senders[s % ns], self._ts(seq), f"o{tag}-{s:010d}",
                       texts[(s * 7) % nb], NULL, None, None, None, None, False, NULL)  # fmt: skip

    async def _chunk(self, conn: asyncpg.Connection, n: int) -> tuple[int, int]:
        """One transaction: lock the conversations, COPY the rows, move every last_seq."""
        async with conn.transaction():
            ids = sorted([self.conv, *self.other_convs])  # lock order as the service's
            rows = await conn.fetch(
                "SELECT id, last_seq FROM conversations WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE", ids
            )
            last = {r["id"]: int(r["last_seq"]) for r in rows}
            if len(last) != len(ids):
                raise RuntimeError(f"conversations missing: {set(ids) - set(last)}")
            first = last[self.conv] + 1
            other_next = {c: last[c] + 1 for c in self.other_convs}
            await conn.copy_records_to_table("events", records=self._rows(first, n, other_next), columns=COLUMNS)
            await conn.executemany(
                "UPDATE conversations SET last_seq = $2 WHERE id = $1",
                [(self.conv, first + n - 1)] + [(c, s - 1) for c, s in other_next.items()],
            )
        return first, n * self.other_per_event

    async def load(self, events: int, timeout_s: float, progress: bool = True) -> LoadResult:
        conn = await asyncpg.connect(self.dsn, timeout=30)
        try:
            return await asyncio.wait_for(self._load(conn, events, progress), timeout_s)
        except TimeoutError:
            raise RuntimeError(f"loading {events:,} events took longer than {timeout_s:.0f} s; stopped") from None
        finally:
            await conn.close()

    async def _load(self, conn: asyncpg.Connection, events: int, progress: bool) -> LoadResult:
        t0 = time.monotonic()
        done = other = 0
        first_seq = 0
        while done < events:
            n = min(self.chunk, events - done)
            first, o = await self._chunk(conn, n)
            first_seq = first_seq or first
            done, other = done + n, other + o
            if progress:
                el = time.monotonic() - t0
                rate = (done + other) / el
                eta = (events - done) * (1 + self.other_per_event) / rate
                print(
                    f"  loaded {done:,}/{events:,} events (+{other:,} other) in {el:.0f} s, "
                    f"{rate:,.0f} rows/s, ~{eta:.0f} s left",
                    flush=True,
                )
        load_s = time.monotonic() - t0
        # Hint bits, the visibility map and planner statistics, as autovacuum would leave them.
        t1 = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) events", timeout=None)
        await conn.execute("ANALYZE conversations", timeout=None)
        last = int(await conn.fetchval("SELECT last_seq FROM conversations WHERE id = $1", self.conv))
        return LoadResult(first_seq, last, done, other, load_s, time.monotonic() - t1)
