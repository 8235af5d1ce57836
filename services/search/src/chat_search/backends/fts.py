"""SQLite FTS5 search backend (aiosqlite): the embedded default.

Tables (one database file of its own, created by :meth:`FtsBackend.start`):

- ``search_docs``: one row per message, key ``(conv, seq)``, with the body, the attachment
  names (one per line), ``ts_ms`` (for ordering) and the event as JSON;
- ``search_words``: FTS5 over ``body`` and ``attachments`` with the ``unicode61`` tokenizer
  (``remove_diacritics 2``): words, case- and accent-insensitive. File names split into
  words at ``.``/``-``/``_``, and a term matches as a phrase, so ``foo.png`` finds
  ``foo.png`` and ``foo`` finds it too (not ``food.png``);
- ``search_tri``: FTS5 over the same columns with the ``trigram`` tokenizer: substring
  search for spaceless scripts. ``unicode61`` keeps a CJK sentence as one token, so
  ``北京`` inside ``我们明天去北京开会`` is only found this way. Trigrams need 3 characters:
  a shorter such term (``北京``, an emoji) is searched with ``LIKE`` on ``search_docs``
  (escaped, and only within the caller's conversations).

Both FTS tables are external-content tables over ``search_docs``, kept in step by triggers
(an upsert is ``INSERT ... ON CONFLICT DO UPDATE``: the update trigger removes the old text
from the indexes and adds the new).

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

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from chat_search.backends import BackendUnavailable, Doc, Hit, Page, QueryInvalid, clamp_limit
from chat_search.backends._highlight import highlight
from chat_search.backends._query import ParsedQuery, decode_cursor, encode_cursor, parse_query, ts_millis

NAME = "fts"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_docs (
    id INTEGER PRIMARY KEY,
    conv TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    attachments TEXT NOT NULL,
    event TEXT NOT NULL,
    UNIQUE (conv, seq)
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_words USING fts5(
    body, attachments, content='search_docs', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_tri USING fts5(
    body, attachments, content='search_docs', content_rowid='id', tokenize='trigram'
);
CREATE TRIGGER IF NOT EXISTS search_docs_ai AFTER INSERT ON search_docs BEGIN
    INSERT INTO search_words (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
    INSERT INTO search_tri (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
END;
CREATE TRIGGER IF NOT EXISTS search_docs_ad AFTER DELETE ON search_docs BEGIN
    INSERT INTO search_words (search_words, rowid, body, attachments)
        VALUES ('delete', old.id, old.body, old.attachments);
    INSERT INTO search_tri (search_tri, rowid, body, attachments)
        VALUES ('delete', old.id, old.body, old.attachments);
END;
CREATE TRIGGER IF NOT EXISTS search_docs_au AFTER UPDATE ON search_docs BEGIN
    INSERT INTO search_words (search_words, rowid, body, attachments)
        VALUES ('delete', old.id, old.body, old.attachments);
    INSERT INTO search_tri (search_tri, rowid, body, attachments)
        VALUES ('delete', old.id, old.body, old.attachments);
    INSERT INTO search_words (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
    INSERT INTO search_tri (rowid, body, attachments) VALUES (new.id, new.body, new.attachments);
END;
"""

_UPSERT = """
INSERT INTO search_docs (conv, seq, sender, ts, ts_ms, body, attachments, event)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (conv, seq) DO UPDATE SET
    sender = excluded.sender, ts = excluded.ts, ts_ms = excluded.ts_ms, body = excluded.body,
    attachments = excluded.attachments, event = excluded.event
"""

# The fragments a search is assembled from (constants: no user text is ever formatted in).
_WORDS = "SELECT rowid AS id, bm25(search_words) AS r FROM search_words WHERE search_words MATCH ?"
_TRI = "SELECT rowid AS id, bm25(search_tri) AS r FROM search_tri WHERE search_tri MATCH ?"
_LIKE = (
    "SELECT id, -1.0 AS r FROM search_docs WHERE conv IN (SELECT conv FROM member)"
    " AND (body LIKE ? ESCAPE '\\' OR attachments LIKE ? ESCAPE '\\')"
)
_AFTER = " AND (s.r > ? OR (s.r = ? AND (d.ts_ms < ? OR (d.ts_ms = ? AND (d.conv > ? OR (d.conv = ? AND d.seq > ?))))))"
_SEARCH = """
WITH member(conv) AS (SELECT value FROM json_each(?)),
matched(id, r) AS MATERIALIZED ({matches}),
scored(id, r) AS (SELECT id, ROUND(SUM(r), 9) FROM matched GROUP BY id)
SELECT d.conv, d.seq, d.ts_ms, d.body, d.event, s.r
FROM scored AS s JOIN search_docs AS d ON d.id = s.id
WHERE d.conv IN (SELECT conv FROM member){narrow}{after}
ORDER BY s.r ASC, d.ts_ms DESC, d.conv ASC, d.seq ASC
LIMIT ?
"""


def fts5_string(text: str) -> str:
    """``text`` as an FTS5 string literal: inside it every character is data."""
    return '"' + text.replace('"', '""') + '"'


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards (and the escape character) escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class FtsBackend:
    """:class:`~chat_search.backends.SearchBackend` on an SQLite file (``":memory:"`` works)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

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
            await db.executescript(_SCHEMA)
            await db.commit()
        except sqlite3.Error as e:
            await db.close()
            raise BackendUnavailable(f"cannot set up {self.path} (SQLite with FTS5 and trigram?): {e}") from e
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

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
    async def upsert(self, docs: list[Doc]) -> None:
        rows = [
            (
                d.conv,
                d.seq,
                d.sender,
                d.ts,
                ts_millis(d.ts),
                d.body,
                "\n".join(d.attachments),
                json.dumps(d.event, ensure_ascii=False, separators=(",", ":")),
            )
            for d in docs
        ]
        await self._write(_UPSERT, rows)

    async def delete(self, keys: list[tuple[str, int]]) -> None:
        await self._write("DELETE FROM search_docs WHERE conv = ? AND seq = ?", [(c, s) for c, s in keys])

    async def delete_conv(self, conv: str) -> None:
        await self._write("DELETE FROM search_docs WHERE conv = ?", [(conv,)])

    async def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        db = self._conn()
        try:
            await db.executemany(sql, rows)
            await db.commit()
        except sqlite3.Error as e:
            await db.rollback()
            raise BackendUnavailable(f"search index write failed: {e}") from e

    # -- search ---------------------------------------------------------------------------
    async def search(self, q: str, convs: list[str], limit: int, cursor: str | None, conv: str | None = None) -> Page:
        parsed = parse_query(q, conv)
        after = decode_cursor(cursor, NAME, parsed.fingerprint) if cursor is not None else None
        limit = clamp_limit(limit)
        members = sorted(set(convs))
        if not members or (conv is not None and conv not in members):
            return Page([], None)
        sql, params = _build_search(parsed, members, conv, after, limit + 1)
        try:
            rows = await self._conn().execute_fetchall(sql, params)
        except sqlite3.OperationalError as e:
            if "fts5" in str(e).lower():  # not expected (terms are quoted), but never a 500
                raise QueryInvalid("the query cannot be searched") from e
            raise BackendUnavailable(f"search failed: {e}") from e
        except sqlite3.Error as e:
            raise BackendUnavailable(f"search failed: {e}") from e
        rows = list(rows)
        hits = [Hit(json.loads(row[4]), highlight(row[3], parsed.terms)) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            c, s, ts_ms, _, _, r = rows[limit - 1]
            next_cursor = encode_cursor(NAME, parsed.fingerprint, [r, ts_ms, c, s])
        return Page(hits, next_cursor)


def _build_search(
    parsed: ParsedQuery, members: list[str], conv: str | None, after: tuple[float, int, str, int] | None, size: int
) -> tuple[str, list[Any]]:
    """The search statement from constant fragments, and its parameters in order."""
    matches: list[str] = []
    params: list[Any] = [json.dumps(members)]
    words = [fts5_string(t.text) for t in parsed.terms if t.words]
    if words:
        matches.append(_WORDS)
        params.append(" OR ".join(words))
    trigram = [fts5_string(t.text) for t in parsed.terms if t.substring and len(t.text) >= 3]
    if trigram:
        matches.append(_TRI)
        params.append(" OR ".join(trigram))
    for t in parsed.terms:
        if t.substring and len(t.text) < 3:
            matches.append(_LIKE)
            params += [like_pattern(t.text)] * 2
    narrow = ""
    if conv is not None:
        narrow = " AND d.conv = ?"
        params.append(conv)
    if after is not None:
        r, ts_ms, c, s = after
        params += [r, r, ts_ms, ts_ms, c, c, s]
    params.append(size)
    sql = _SEARCH.format(matches=" UNION ALL ".join(matches), narrow=narrow, after=_AFTER if after else "")
    return sql, params
