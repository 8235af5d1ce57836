"""SQLite FTS5 search backend (aiosqlite): the embedded default.

Tables (one database file of its own, created by :meth:`FtsBackend.start`):

- ``search_docs``: one row per message, key ``(conv, seq)``, with the body, the attachment
  names (one per line), ``ts_ms`` (for ordering) and the event as JSON (without the
  fields that have columns: ``Doc.stored_event``, put together again by :func:`hit_event`);
- ``search_words``: FTS5 over ``body`` and ``attachments`` with the ``unicode61`` tokenizer
  (``remove_diacritics 2``): words, case- and accent-insensitive. File names split into
  words at ``.``/``-``/``_``, and a term matches as a phrase, so ``foo.png`` finds
  ``foo.png`` and ``foo`` finds it too (not ``food.png``);
- ``search_tri``: FTS5 over the same columns with the ``trigram`` tokenizer: substring
  search for spaceless scripts. ``unicode61`` keeps a CJK sentence as one token, so
  ``北京开`` inside ``我们明天去北京开会`` is only found this way;
- ``search_grams``: FTS5 over ``search_docs.grams``, every single such character and every
  adjacent pair of them as an ASCII token (``_query.grams_of``): trigrams need 3
  characters, and a shorter term of them (``北京``, ``京``, an emoji) is one token here,
  found exactly where ``LIKE '%北京%'`` would find it, from an index. A short term that
  mixes them with letters (``a北``, rare) is still searched with ``LIKE`` on ``search_docs``
  (escaped, and only within the caller's conversations).
  Only rows with such characters (``search_docs.sub``) are in the trigram and grams tables
  and in the partial index the ``LIKE`` walks: most chat text has none, and the trigram
  table was half the indexing time.

**FTS rowids are keys.** A document's ``key`` is ``(slot << 31) | seq``, ``slot`` its
conversation's number in ``search_convs`` (seqs are below 2^31), and it is the document's
rowid in every FTS index: a conversation's documents are one rowid range there. A search
keeps a match only when its rowid's slot is one of the caller's (``(rowid >> 31) IN
slots``, before ``bm25`` scores it or any row is read), so a query costs what the caller
can see, not the whole index (at 1,000,000 messages, a word query of a user in 1,000 of
5,000 conversations: 13.2 -> 4.2 ms mean, bench/README.md). ``search_docs`` itself keeps
its rows in insert order (``id``; writes append, which is what keeps indexing fast) with a
unique index on ``key``. A file of an earlier layout is converted at start, in one
transaction.

Both FTS tables are external-content tables over ``search_docs``, kept in step by triggers
(an upsert is ``INSERT ... ON CONFLICT DO UPDATE``: the update trigger removes the old text
from the indexes and adds the new).

Versions, positions, rebuilds (see the package docs): ``search_docs.version`` and the
tombstones ``search_gone(conv, seq, version)`` make every write "newest wins" in SQL (an
upsert applies only ``WHERE excluded.version >= version`` and when no newer tombstone
exists). ``search_meta`` holds the stream positions (``position:<stream>``), the current
generation (``gen``) and the running rebuild (``gen_next``, ``rebuild``): a rebuild in
place marks every row it writes with the next generation, live writes during it mark theirs
too (read from ``search_meta`` in the same statement, so no write can miss the mark), and
its finish deletes every row and tombstone of an older generation in one transaction.
The rebuild may run in another process (``chat-admin search reindex``) on the same file:
SQLite serializes the writers (WAL, ``busy_timeout``).

Injection: the SQL text is assembled from constant fragments only; every user-derived value
is a bound parameter. Each term becomes an FTS5 *string* (``"..."`` with ``"`` doubled),
where FTS5 syntax (``*``, ``:``, ``NEAR``, ``OR``, ``^``, column filters) has no meaning;
terms are joined with ``OR`` by us. The membership list is one JSON parameter read with
``json_each`` (any number of conversations, no parameter limit, no temp table), applied to
every row returned.

Ranking: ``bm25()`` of each FTS table, summed per message (smaller is better), ``-1`` per
``LIKE`` term matched; rounded to 9 decimals so that paging compares the same numbers. The
order is ``(rank, ts_ms desc, conv, seq)`` and the cursor that key (keyset paging).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from chat_search.backends import (
    UNVERSIONED_DELETE,
    BackendUnavailable,
    Doc,
    Hit,
    Page,
    Position,
    QueryInvalid,
    RebuildBusy,
    RebuildTarget,
    Removal,
    clamp_limit,
    whole_event,
)
from chat_search.backends._highlight import highlight
from chat_search.backends._query import (
    ParsedQuery,
    decode_cursor,
    encode_cursor,
    gram_token,
    grams_of,
    has_substring_chars,
    parse_query,
    short_substring_term,
    ts_millis,
)

NAME = "fts"
SLOT_CACHE = 200_000  # conversations whose slot a backend remembers (then it starts over)

_SCHEMA_BASE = """
CREATE TABLE IF NOT EXISTS search_convs (slot INTEGER PRIMARY KEY, conv TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS search_gone (
    conv TEXT NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conv, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
# A document's id is its key: (its conversation's slot << 31) | seq (seqs are below 2^31,
# chat_proto.bounds.MAX_SEQ). So a conversation's documents are one id range, in both FTS
# indexes too, and a search tells the caller's rows from the rest by the id alone.
_SCHEMA_DOCS = """
CREATE TABLE IF NOT EXISTS search_docs (
    id INTEGER PRIMARY KEY,
    key INTEGER NOT NULL,
    conv TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    attachments TEXT NOT NULL,
    event TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    gen INTEGER NOT NULL DEFAULT 0,
    sub INTEGER NOT NULL DEFAULT 1,
    grams TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS search_docs_key ON search_docs (key);
CREATE VIRTUAL TABLE IF NOT EXISTS search_words USING fts5(
    body, attachments, content='search_docs', content_rowid='key',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_tri USING fts5(
    body, attachments, content='search_docs', content_rowid='key', tokenize='trigram'
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_grams USING fts5(
    grams, content='search_docs', content_rowid='key', tokenize='unicode61'
);
"""
# search_meta 'layout': 4 = FTS rowids are keys and short substring terms have their own
# index (unmarked: FTS rowids were the insert order, no such index)
LAYOUT = "4"
# An older file: its rows get their keys as ids and both FTS indexes are made again (one
# transaction; the triggers are dropped first and made again afterwards).
_RELAYOUT = """
BEGIN IMMEDIATE;
DROP TRIGGER IF EXISTS search_docs_ai;
DROP TRIGGER IF EXISTS search_docs_ad;
DROP TRIGGER IF EXISTS search_docs_au;
DROP TRIGGER IF EXISTS search_docs_ai2;
DROP TRIGGER IF EXISTS search_docs_ad2;
DROP TRIGGER IF EXISTS search_docs_au2;
DROP TRIGGER IF EXISTS search_docs_ai3;
DROP TRIGGER IF EXISTS search_docs_ad3;
DROP TRIGGER IF EXISTS search_docs_au3;
DROP TRIGGER IF EXISTS search_docs_ai4;
DROP TRIGGER IF EXISTS search_docs_ad4;
DROP TRIGGER IF EXISTS search_docs_au4;
DROP INDEX IF EXISTS search_docs_sub;
DROP INDEX IF EXISTS search_docs_key;
DROP TABLE IF EXISTS search_words;
DROP TABLE IF EXISTS search_tri;
DROP TABLE IF EXISTS search_grams;
INSERT OR IGNORE INTO search_convs (conv) SELECT DISTINCT conv FROM search_docs ORDER BY conv;
ALTER TABLE search_docs RENAME TO search_docs_before;
{docs}
INSERT INTO search_docs (key, conv, seq, sender, ts, ts_ms, body, attachments, event, version, gen, sub, grams)
SELECT (c.slot << 31) | d.seq, d.conv, d.seq, d.sender, d.ts, d.ts_ms, d.body, d.attachments, d.event,
       d.version, d.gen, d.sub, CASE WHEN d.sub THEN chat_grams(d.body, d.attachments) ELSE '' END
FROM search_docs_before AS d JOIN search_convs AS c ON c.conv = d.conv ORDER BY d.id;
DROP TABLE search_docs_before;
INSERT INTO search_words (search_words) VALUES ('rebuild');
INSERT INTO search_tri (rowid, body, attachments) SELECT key, body, attachments FROM search_docs WHERE sub ORDER BY key;
INSERT INTO search_grams (rowid, grams) SELECT key, grams FROM search_docs WHERE sub ORDER BY key;
INSERT OR REPLACE INTO search_meta (key, value) VALUES ('layout', '{layout}');
COMMIT;
"""

# The triggers that keep the FTS tables in step. Only a row whose text has characters of a
# spaceless script or symbols (``sub``: what a substring term can match, _query.py) goes into
# the trigram and grams tables: for most chat text that is half the indexing work and most of
# the file saved. Created in one transaction with the removal of earlier versions' triggers.
_TRIGGERS = """
BEGIN IMMEDIATE;
DROP TRIGGER IF EXISTS search_docs_ai;
DROP TRIGGER IF EXISTS search_docs_ad;
DROP TRIGGER IF EXISTS search_docs_au;
DROP TRIGGER IF EXISTS search_docs_ai2;
DROP TRIGGER IF EXISTS search_docs_ad2;
DROP TRIGGER IF EXISTS search_docs_au2;
DROP TRIGGER IF EXISTS search_docs_ai3;
DROP TRIGGER IF EXISTS search_docs_ad3;
DROP TRIGGER IF EXISTS search_docs_au3;
CREATE TRIGGER IF NOT EXISTS search_docs_ai4 AFTER INSERT ON search_docs BEGIN
    INSERT INTO search_words (rowid, body, attachments) VALUES (new.key, new.body, new.attachments);
    INSERT INTO search_tri (rowid, body, attachments) SELECT new.key, new.body, new.attachments WHERE new.sub;
    INSERT INTO search_grams (rowid, grams) SELECT new.key, new.grams WHERE new.sub;
END;
CREATE TRIGGER IF NOT EXISTS search_docs_ad4 AFTER DELETE ON search_docs BEGIN
    INSERT INTO search_words (search_words, rowid, body, attachments)
        VALUES ('delete', old.key, old.body, old.attachments);
    INSERT INTO search_tri (search_tri, rowid, body, attachments)
        SELECT 'delete', old.key, old.body, old.attachments WHERE old.sub;
    INSERT INTO search_grams (search_grams, rowid, grams) SELECT 'delete', old.key, old.grams WHERE old.sub;
END;
CREATE TRIGGER IF NOT EXISTS search_docs_au4 AFTER UPDATE ON search_docs BEGIN
    INSERT INTO search_words (search_words, rowid, body, attachments)
        VALUES ('delete', old.key, old.body, old.attachments);
    INSERT INTO search_tri (search_tri, rowid, body, attachments)
        SELECT 'delete', old.key, old.body, old.attachments WHERE old.sub;
    INSERT INTO search_grams (search_grams, rowid, grams) SELECT 'delete', old.key, old.grams WHERE old.sub;
    INSERT INTO search_words (rowid, body, attachments) VALUES (new.key, new.body, new.attachments);
    INSERT INTO search_tri (rowid, body, attachments) SELECT new.key, new.body, new.attachments WHERE new.sub;
    INSERT INTO search_grams (rowid, grams) SELECT new.key, new.grams WHERE new.sub;
END;
CREATE INDEX IF NOT EXISTS search_docs_sub ON search_docs (conv) WHERE sub;
COMMIT;
"""

# A live write (:gen NULL) marks its rows with the running rebuild's generation when there is
# one (the COALESCE subquery on search_meta); a rebuild's own writes pass theirs.
_CONV = "INSERT OR IGNORE INTO search_convs (conv) VALUES (?)"
_SLOTS = "SELECT conv, slot FROM search_convs WHERE conv IN (SELECT value FROM json_each(?))"
_UPSERT = """
INSERT INTO search_docs (key, conv, seq, sender, ts, ts_ms, body, attachments, event, version, sub, grams, gen)
SELECT :key, :conv, :seq, :sender, :ts, :ts_ms, :body, :attachments, :event, :version, :sub, :grams, COALESCE(:gen, (
    SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM search_meta WHERE key IN ('gen', 'gen_next')))
WHERE NOT EXISTS (SELECT 1 FROM search_gone WHERE conv = :conv AND seq = :seq AND version > :version)
ON CONFLICT (key) DO UPDATE SET
    sender = excluded.sender, ts = excluded.ts, ts_ms = excluded.ts_ms, body = excluded.body,
    attachments = excluded.attachments, event = excluded.event, version = excluded.version,
    sub = excluded.sub, grams = excluded.grams, gen = MAX(search_docs.gen, excluded.gen)
WHERE excluded.version >= search_docs.version
"""
_REMOVE = (
    "DELETE FROM search_docs WHERE key = ((SELECT slot FROM search_convs WHERE conv = :conv) << 31 | :seq)"
    " AND version <= :version"
)
_TOMBSTONE = """
INSERT INTO search_gone (conv, seq, version, gen) VALUES (:conv, :seq, :version, COALESCE(:gen, (
    SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM search_meta WHERE key IN ('gen', 'gen_next'))))
ON CONFLICT (conv, seq) DO UPDATE SET
    version = MAX(search_gone.version, excluded.version), gen = MAX(search_gone.gen, excluded.gen)
"""
_POSITION = """
INSERT INTO search_meta (key, value) VALUES (:key, :seq)
ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(search_meta.value AS INTEGER), CAST(excluded.value AS INTEGER))
"""

# The fragments a search is assembled from (constants: no user text is ever formatted in).
# (the caller's conversations: ``member`` by id, ``slots`` by slot; a match outside them is
# dropped by its id before bm25 scores it or anything else is read; the order is decided on
# the narrow columns, and only the page's rows have their text and event read)
_WORDS = (
    "SELECT rowid AS id, bm25(search_words) AS r FROM search_words WHERE search_words MATCH ?"
    " AND (rowid >> 31) IN (SELECT slot FROM slots)"
)
_TRI = (
    "SELECT rowid AS id, bm25(search_tri) AS r FROM search_tri WHERE search_tri MATCH ?"
    " AND (rowid >> 31) IN (SELECT slot FROM slots)"
)
_GRAMS = (
    "SELECT rowid AS id, -1.0 AS r FROM search_grams WHERE search_grams MATCH ?"
    " AND (rowid >> 31) IN (SELECT slot FROM slots)"
)
_LIKE = (
    "SELECT key AS id, -1.0 AS r FROM search_docs WHERE conv IN (SELECT conv FROM member) AND sub"
    " AND (body LIKE ? ESCAPE '\\' OR attachments LIKE ? ESCAPE '\\')"
)
_AFTER = " WHERE s.r > ? OR (s.r = ? AND (d.ts_ms < ? OR (d.ts_ms = ? AND (d.conv > ? OR (d.conv = ? AND d.seq > ?)))))"
_SEARCH = """
WITH member(conv) AS (SELECT value FROM json_each(?)),
slots(slot) AS MATERIALIZED (SELECT value FROM json_each(?)),
matched(id, r) AS MATERIALIZED ({matches}),
scored(id, r) AS (SELECT id, ROUND(SUM(r), 9) FROM matched GROUP BY id),
page(id, r, ts_ms, conv, seq) AS (
    SELECT s.id, s.r, d.ts_ms, d.conv, d.seq FROM scored AS s JOIN search_docs AS d ON d.key = s.id{after}
    ORDER BY s.r ASC, d.ts_ms DESC, d.conv ASC, d.seq ASC
    LIMIT ?
)
SELECT p.conv, p.seq, p.ts_ms, d.body, d.event, p.r, d.sender, d.ts
FROM page AS p JOIN search_docs AS d ON d.key = p.id
ORDER BY p.r ASC, p.ts_ms DESC, p.conv ASC, p.seq ASC
"""


def fts5_string(text: str) -> str:
    """``text`` as an FTS5 string literal: inside it every character is data."""
    return '"' + text.replace('"', '""') + '"'


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards (and the escape character) escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class FtsBackend:
    """:class:`~chat_search.backends.SearchBackend` on an SQLite file (``":memory:"`` works)."""

    def __init__(self, path: str | Path, readers: int = 3, cache_mib: int = 64, mmap_mib: int = 1024) -> None:
        self.path = path
        # the file is read through a memory map of up to this size (0: read() calls): a
        # search touches one row per match it keeps, spread over the file, and a system call
        # per page was a third of a CJK query's time at 1,000,000 messages
        self.mmap_mib = mmap_mib
        # the writer's page cache: the key index and the FTS segments being merged stay in
        # memory (at 1,000,000 messages, 2 MiB -> 64 MiB: +20 % indexing rate)
        self.cache_mib = cache_mib
        self._db: aiosqlite.Connection | None = None
        # One connection writes: its transactions must not interleave (a live batch, a
        # rebuild in this process, a conversation's removal), so every write holds this lock.
        self._write_lock = asyncio.Lock()
        # Searches run on their own read-only connections (WAL: readers never wait for the
        # writer, and SQLite runs a query without the GIL), so a search never queues behind
        # a bulk write or behind another search. 0, or an in-memory database: the writer's.
        self._readers_wanted = 0 if str(path) == ":memory:" else readers
        self._readers: list[aiosqlite.Connection] = []
        self._slots: dict[str, int] = {}  # conversation -> slot, as far as seen
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._db is not None:
            return
        try:
            db = await aiosqlite.connect(self.path)
        except sqlite3.Error as e:
            raise BackendUnavailable(f"cannot open {self.path}: {e}") from e
        try:
            await db.execute("PRAGMA busy_timeout = 5000")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")  # an index: rebuildable from the messages store
            await db.execute(f"PRAGMA cache_size = {-1024 * int(self.cache_mib)}")
            await db.execute(f"PRAGMA mmap_size = {(1 << 20) * int(self.mmap_mib)}")
            # a checkpoint every ~40 MiB of WAL, not 4: pages rewritten by many batches (the
            # key index, FTS segments) are copied back once
            await db.execute("PRAGMA wal_autocheckpoint = 10000")
            await db.executescript(_SCHEMA_BASE)
            await self._upgrade(db)
            await db.executescript(_SCHEMA_DOCS)
            await db.execute("INSERT OR IGNORE INTO search_meta (key, value) VALUES ('layout', ?)", (LAYOUT,))
            await db.commit()
            await db.executescript(_TRIGGERS)
        except sqlite3.Error as e:
            await db.close()
            raise BackendUnavailable(f"cannot set up {self.path} (SQLite with FTS5 and trigram?): {e}") from e
        self._db = db
        try:
            for _ in range(self._readers_wanted):
                reader = await aiosqlite.connect(self.path)
                self._readers.append(reader)
                await reader.execute("PRAGMA busy_timeout = 5000")
                await reader.execute("PRAGMA query_only = 1")
                await reader.execute(f"PRAGMA mmap_size = {(1 << 20) * int(self.mmap_mib)}")
                self._idle.put_nowait(reader)
        except sqlite3.Error as e:
            await self.close()
            raise BackendUnavailable(f"cannot open a reader of {self.path}: {e}") from e

    @staticmethod
    async def _upgrade(db: aiosqlite.Connection) -> None:
        """A file of an older layout: the columns it lacks, then ids that are keys."""
        columns = {row[1] for row in await db.execute_fetchall("PRAGMA table_info(search_docs)")}
        if not columns:
            return  # a new file
        for column in ("version", "gen"):  # a file made before versions: add them (0 = seq)
            if column not in columns:
                await db.execute(f"ALTER TABLE search_docs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        if "sub" not in columns:  # a file whose every row is in the trigram table
            await db.execute("ALTER TABLE search_docs ADD COLUMN sub INTEGER NOT NULL DEFAULT 1")
        await db.commit()
        layout = list(await db.execute_fetchall("SELECT value FROM search_meta WHERE key = 'layout'"))
        if not layout or layout[0][0] != LAYOUT:
            await db.create_function("chat_grams", 2, _grams_of_row, deterministic=True)
            await db.executescript(_RELAYOUT.format(docs=_SCHEMA_DOCS, layout=LAYOUT))

    async def close(self) -> None:
        readers, self._readers = self._readers, []
        self._idle = asyncio.Queue()
        for reader in readers:
            await reader.close()
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read-only connection of the pool (waiting for one when all are busy)."""
        if not self._readers:
            yield self._conn()
            return
        reader = await self._idle.get()
        try:
            yield reader
        finally:
            self._idle.put_nowait(reader)

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise BackendUnavailable("the search index is not open")
        return self._db

    async def ping(self) -> None:
        try:
            await self._conn().execute_fetchall("SELECT 1 FROM search_docs LIMIT 1")
        except (sqlite3.Error, ValueError) as e:  # ValueError: aiosqlite's "no active connection"
            raise BackendUnavailable(str(e)) from e

    # -- writes ---------------------------------------------------------------------------
    async def write(self, docs: list[Doc], removals: list[Removal], position: Position | None = None) -> None:
        await self._write_batch(docs, removals, position, gen=None)

    async def upsert(self, docs: list[Doc]) -> None:
        await self.write(docs, [])

    async def delete(self, keys: list[tuple[str, int]]) -> None:
        await self.write([], [Removal(c, s, UNVERSIONED_DELETE) for c, s in keys])

    async def delete_conv(self, conv: str) -> None:
        async with self._write_lock:
            db = self._conn()
            try:
                await db.execute(
                    "DELETE FROM search_docs WHERE key BETWEEN (SELECT slot FROM search_convs WHERE conv = :conv) << 31"
                    " AND ((SELECT slot FROM search_convs WHERE conv = :conv) << 31) + 2147483647",
                    {"conv": conv},
                )
                await db.commit()
            except sqlite3.Error as e:
                await db.rollback()
                raise BackendUnavailable(f"search index write failed: {e}") from e

    async def _write_batch(
        self, docs: list[Doc], removals: list[Removal], position: Position | None, gen: int | None
    ) -> None:
        """One transaction: the docs, the removals (tombstones), the position."""
        rows = [
            {
                "conv": d.conv,
                "seq": d.seq,
                "sender": d.sender,
                "ts": d.ts,
                "ts_ms": ts_millis(d.ts),
                "body": d.body,
                "attachments": "\n".join(d.attachments),
                "event": orjson.dumps(d.stored_event()).decode(),
                "version": d.ver,
                "sub": int(sub := has_substring_chars(d.body) or any(map(has_substring_chars, d.attachments))),
                "grams": grams_of(d.body, *d.attachments) if sub else "",
                "gen": gen,
            }
            for d in docs
        ]
        gone = [{"conv": r.conv, "seq": r.seq, "version": r.version, "gen": gen} for r in removals]
        if not rows and not gone and position is None:
            return
        async with self._write_lock:
            db = self._conn()
            try:
                if rows:
                    # FTS5 keeps a transaction's new rows in memory only while their rowids
                    # ascend (it writes a segment whenever one does not): rows go in key order
                    convs = sorted({d.conv for d in docs})
                    await db.executemany(_CONV, [(c,) for c in convs])
                    slots: dict[str, int] = {c: n for c, n in await db.execute_fetchall(_SLOTS, (json.dumps(convs),))}
                    keys = [slots[d.conv] << 31 | d.seq for d in docs]
                    if len(self._slots) < SLOT_CACHE:
                        self._slots.update(slots)
                    for row, key in zip(rows, keys, strict=True):
                        row["key"] = key
                    rows = [row for _, row in sorted(zip(keys, rows, strict=True), key=lambda kr: kr[0])]
                    await db.executemany(_UPSERT, rows)
                if gone:
                    await db.executemany(_REMOVE, gone)
                    await db.executemany(_TOMBSTONE, gone)
                if position is not None:
                    await db.execute(_POSITION, {"key": f"position:{position.stream}", "seq": position.seq})
                await db.commit()
            except sqlite3.Error as e:
                await db.rollback()
                raise BackendUnavailable(f"search index write failed: {e}") from e

    async def position(self, stream: str) -> int | None:
        rows = await self._read("SELECT value FROM search_meta WHERE key = ?", (f"position:{stream}",))
        return int(rows[0][0]) if rows else None

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return list(await self._conn().execute_fetchall(sql, params))
        except sqlite3.Error as e:
            raise BackendUnavailable(f"search index read failed: {e}") from e

    # -- rebuild --------------------------------------------------------------------------
    async def rebuild_state(self) -> dict[str, Any] | None:
        rows = await self._read("SELECT value FROM search_meta WHERE key = 'rebuild'")
        return dict(json.loads(rows[0][0])) if rows else None

    async def begin_rebuild(self, owner: str, stale_after_s: float = 60.0) -> RebuildTarget:
        async with self._write_lock:
            db = self._conn()
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    rows = await db.execute_fetchall("SELECT key, value FROM search_meta")
                    meta: dict[str, str] = {str(k): str(v) for k, v in rows}
                    running = json.loads(meta["rebuild"]) if "rebuild" in meta else None
                    if running is not None and time.time() - float(running["heartbeat"]) < stale_after_s:
                        raise RebuildBusy(f"a rebuild by {running['owner']} is running (since {running['started']})")
                    gen = max(int(meta.get("gen", 0)), int(meta.get("gen_next", 0))) + 1
                    now = time.time()
                    state = {"owner": owner, "gen": gen, "started": now, "heartbeat": now, "done": 0, "total": 0}
                    await db.executemany(
                        "INSERT OR REPLACE INTO search_meta (key, value) VALUES (?, ?)",
                        [("gen_next", str(gen)), ("rebuild", json.dumps(state))],
                    )
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
            except sqlite3.Error as e:
                raise BackendUnavailable(f"cannot start a rebuild: {e}") from e
        return _FtsRebuild(self, owner, gen)

    async def _rebuild_step(self, owner: str, gen: int, sql: list[tuple[str, Any]]) -> None:
        """Run ``sql`` in one transaction if this rebuild still holds the lock, else RebuildBusy."""
        async with self._write_lock:
            db = self._conn()
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    rows = list(await db.execute_fetchall("SELECT value FROM search_meta WHERE key = 'rebuild'"))
                    running = json.loads(rows[0][0]) if rows else None
                    if running is None or running["owner"] != owner or int(running["gen"]) != gen:
                        raise RebuildBusy("this rebuild was taken over (its heartbeat went stale)")
                    for statement, params in sql:
                        await db.execute(statement, params)
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
            except sqlite3.Error as e:
                raise BackendUnavailable(f"rebuild step failed: {e}") from e

    # -- search ---------------------------------------------------------------------------
    async def _slots_of(self, db: aiosqlite.Connection, convs: list[str]) -> list[int]:
        """The slots of ``convs`` (those with documents; a slot never changes once given),
        remembered, so a search does not look a thousand conversations up each time."""
        known = self._slots
        missing = [c for c in convs if c not in known]
        if missing:
            if len(known) + len(missing) > SLOT_CACHE:
                known.clear()
            for c, n in await db.execute_fetchall(_SLOTS, (json.dumps(missing),)):
                known[c] = n
        return [n for c in convs if (n := known.get(c)) is not None]

    async def search(self, q: str, convs: list[str], limit: int, cursor: str | None, conv: str | None = None) -> Page:
        parsed = parse_query(q, conv)
        after = decode_cursor(cursor, NAME, parsed.fingerprint) if cursor is not None else None
        limit = clamp_limit(limit)
        members = sorted(set(convs))
        if not members or (conv is not None and conv not in members):
            return Page([], None)
        if conv is not None:
            members = [conv]
        try:
            async with self._reader() as db:
                slots = await self._slots_of(db, members)
                sql, params = _build_search(parsed, members, slots, after, limit + 1)
                rows = await db.execute_fetchall(sql, params)
        except sqlite3.OperationalError as e:
            if "fts5" in str(e).lower():  # not expected (terms are quoted), but never a 500
                raise QueryInvalid("the query cannot be searched") from e
            raise BackendUnavailable(f"search failed: {e}") from e
        except sqlite3.Error as e:
            raise BackendUnavailable(f"search failed: {e}") from e
        rows = list(rows)
        hits = [Hit(hit_event(row), highlight(row[3], parsed.terms)) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            c, s, ts_ms, _, _, r, _, _ = rows[limit - 1]
            next_cursor = encode_cursor(NAME, parsed.fingerprint, [r, ts_ms, c, s])
        return Page(hits, next_cursor)


class _FtsRebuild:
    """A rebuild in place: rows of generation ``gen`` are the new copy."""

    def __init__(self, backend: FtsBackend, owner: str, gen: int) -> None:
        self.backend, self.owner, self.gen = backend, owner, gen

    async def write(self, docs: list[Doc], removals: list[Removal]) -> None:
        await self.backend._write_batch(docs, removals, None, gen=self.gen)

    async def progress(self, done: int, total: int) -> None:
        state = {"owner": self.owner, "gen": self.gen, "heartbeat": time.time(), "done": done, "total": total}
        await self.backend._rebuild_step(
            self.owner,
            self.gen,
            [
                (
                    "UPDATE search_meta SET value = json_patch(value, ?) WHERE key = 'rebuild'",
                    (json.dumps(state),),
                )
            ],
        )

    async def finish(self, position: Position | None) -> None:
        steps: list[tuple[str, Any]] = [
            ("DELETE FROM search_docs WHERE gen < ?", (self.gen,)),
            ("DELETE FROM search_gone WHERE gen < ?", (self.gen,)),
            ("INSERT OR REPLACE INTO search_meta (key, value) VALUES ('gen', ?)", (str(self.gen),)),
            ("DELETE FROM search_meta WHERE key IN ('gen_next', 'rebuild')", ()),
        ]
        if position is not None:
            steps.append((_POSITION, {"key": f"position:{position.stream}", "seq": position.seq}))
        await self.backend._rebuild_step(self.owner, self.gen, steps)

    async def abort(self) -> None:
        # rows already written with this generation are current data: they stay
        await self.backend._rebuild_step(
            self.owner, self.gen, [("DELETE FROM search_meta WHERE key IN ('gen_next', 'rebuild')", ())]
        )


def hit_event(row: Any) -> dict[str, Any]:
    """The event of a search row (conv, seq, ts_ms, body, event, r, sender, ts), whole again."""
    return whole_event(orjson.loads(row[4]), row[0], row[1], row[6], row[7], row[3])


def _grams_of_row(body: str, attachments: str) -> str:
    return grams_of(body, *attachments.split("\n"))


def _build_search(
    parsed: ParsedQuery, members: list[str], slots: list[int], after: tuple[float, int, str, int] | None, size: int
) -> tuple[str, list[Any]]:
    """The search statement from constant fragments, and its parameters in order."""
    matches: list[str] = []
    params: list[Any] = [json.dumps(members), json.dumps(slots)]
    words = [fts5_string(t.text) for t in parsed.terms if t.words]
    if words:
        matches.append(_WORDS)
        params.append(" OR ".join(words))
    trigram = [fts5_string(t.text) for t in parsed.terms if t.substring and len(t.text) >= 3]
    if trigram:
        matches.append(_TRI)
        params.append(" OR ".join(trigram))
    for t in parsed.terms:
        if short_substring_term(t.text):
            matches.append(_GRAMS)
            params.append(fts5_string(gram_token(t.text)))
        elif t.substring and len(t.text) < 3:
            matches.append(_LIKE)
            params += [like_pattern(t.text)] * 2
    if after is not None:
        r, ts_ms, c, s = after
        params += [r, r, ts_ms, ts_ms, c, c, s]
    params.append(size)
    sql = _SEARCH.format(matches=" UNION ALL ".join(matches), after=_AFTER if after else "")
    return sql, params
