"""The search storage layer: one interface, two implementations.

- :class:`chat_search.backends.fts.FtsBackend`: SQLite FTS5 (aiosqlite), the embedded default;
- :class:`chat_search.backends.opensearch.OpenSearchBackend`: OpenSearch, for production.

Both implement :class:`SearchBackend` and behave the same way (one test suite runs on both):

**Membership is not negotiable.** ``search(q, convs, ...)`` only ever returns messages of the
conversations in ``convs`` (the caller's memberships, computed by the service, never by the
user); ``conv`` narrows further and must be one of ``convs`` (else the page is empty). The
filter is part of every query (an OpenSearch ``terms`` filter, an SQL ``conv IN (...)``),
whatever the user's text says.

**User text is data, never query structure.** The text is parsed here (:mod:`._query`) into
at most :data:`MAX_TERMS` terms: bare words and ``"quoted phrases"``. Nothing else is
syntax: ``*``, ``:``, ``(``, ``OR``, ``-``, ``/.../``, ``_exists_`` are plain characters
(mostly punctuation that no analyzer keeps). Each term becomes a *value* (an OpenSearch
``multi_match`` query string over a fixed field list, an FTS5 string literal bound as a
parameter), never a piece of query DSL or SQL. A term matches as a phrase (its words next
to each other, so ``foo.png`` finds the file ``foo.png`` and ``report`` finds
``report-2024.pdf``); a message matches when any term does, and messages matching more terms
rank higher.

**Bad input is a 422, never a 500.** Text longer than :data:`MAX_QUERY_CHARS`, text with no
word in it, and a cursor that was not made by the same backend for the same query raise
:class:`QueryInvalid`; a backend that cannot answer raises :class:`BackendUnavailable`.

**Order and paging.** Most relevant first; ties by ``ts`` (newest first), then ``conv``,
then ``seq``: a total order, so keyset paging (``next_cursor``) returns every hit exactly
once while the index does not change. A cursor is base64url JSON holding the last hit's
sort key, the backend's name and a fingerprint of the query (paging by score only makes
sense for the same query).

**Versions: the newest wins, in any order.** A document carries the seq of the newest event
it reflects (:attr:`Doc.version`: the message's own seq, or its latest edit's); a removal
carries the delete's seq. A write never replaces a newer version and never brings back a
document removed by a newer delete (a tombstone remembers it: on OpenSearch for
``index.gc_deletes``, 10 minutes; on FTS5 until the next rebuild). So redeliveries, an edit
indexed before its message, and a rebuild racing live indexing all converge on the store's
state.

**Position.** Each write may carry the event-stream position it covers (:class:`Position`),
stored with the documents in the same request (so it is never ahead of what was written)
and kept as a maximum per stream: the indexer compares it with the stream to detect events
that expired before they were indexed.

**Rebuild** (:meth:`SearchBackend.begin_rebuild`): a fresh copy filled from the messages
store while live indexing goes on. One at a time (a lock with a heartbeat; a rebuild whose
heartbeat stopped for ``stale_after_s`` is taken over). While it runs, live writes go to
both the current copy and the new one; :meth:`RebuildTarget.finish` makes the new copy the
one searched (OpenSearch: a new index, then one atomic alias swap and the old index
deleted; FTS5: a generation mark on every row, then everything older swept in one
transaction).

**Highlights** are the message body, HTML-escaped, with the matches wrapped in
``<mark>…</mark>``: a fragment of at most ~300 characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "UNVERSIONED_DELETE",
    "BackendUnavailable",
    "Doc",
    "Hit",
    "Page",
    "Position",
    "QueryInvalid",
    "RebuildBusy",
    "RebuildTarget",
    "Removal",
    "SearchBackend",
    "clamp_limit",
]

MAX_QUERY_CHARS = 1000
"""Longer query text is refused (:class:`QueryInvalid`)."""
MAX_TERMS = 32
"""Terms beyond the first 32 distinct ones are ignored (a pasted paragraph still searches)."""
MAX_LIMIT = 100
"""``limit`` is clamped to ``1..MAX_LIMIT``."""


UNVERSIONED_DELETE = 2**62
"""The version of a removal that says "gone for good" (:meth:`SearchBackend.delete`)."""


class QueryInvalid(Exception):
    """The user's query (or cursor) cannot be searched: the service answers 422 ``invalid``."""


class BackendUnavailable(Exception):
    """The backend cannot answer (down, overloaded, timed out): the service answers 503."""


@dataclass(frozen=True)
class Doc:
    """One message as indexed; its key is ``(conv, seq)`` (OpenSearch id ``f"{conv}:{seq}"``)."""

    conv: str
    seq: int
    sender: str
    ts: str
    """RFC 3339 with milliseconds, e.g. ``2025-01-31T12:00:00.000Z``."""
    body: str
    """The current text (the newest edit)."""
    attachments: list[str]
    """Attachment display names: file-name-like tokens are searchable (``foo.png``, ``foo``)."""
    event: dict[str, Any]
    """The message event as clients get it (returned in hits); its body is the current text."""

    version: int = 0
    """The seq of the newest event this document reflects (the message's own, or its latest
    edit's); 0 means ``seq``. See "Versions" above."""

    @property
    def ver(self) -> int:
        return self.version or self.seq

    def stored_event(self) -> dict[str, Any]:
        """What an index keeps of the event: without the fields it stores beside it
        (``conv``, ``seq``, ``sender``, ``ts``, ``body``: about a third of a row) when all of
        them are there and equal; else all of it. :func:`whole_event` puts it together again."""
        ev = self.event
        if (
            ev.get("conv") == self.conv
            and ev.get("seq") == self.seq
            and ev.get("sender") == self.sender
            and ev.get("ts") == self.ts
            and ev.get("body") == self.body
        ):
            return {k: v for k, v in ev.items() if k not in _DOC_FIELDS}
        return ev


_DOC_FIELDS = frozenset(("conv", "seq", "sender", "ts", "body"))


def whole_event(stored: dict[str, Any], conv: str, seq: int, sender: str, ts: str, body: str) -> dict[str, Any]:
    """The event as indexed, from :meth:`Doc.stored_event` and the document's fields."""
    if "conv" in stored:  # kept whole (written before fields were left out, or unusual)
        return stored
    return {"conv": conv, "seq": seq, "sender": sender, "ts": ts, "body": body, **stored}


@dataclass(frozen=True)
class Removal:
    """A message removed from the index by the event ``version`` (its delete's seq)."""

    conv: str
    seq: int
    version: int


@dataclass(frozen=True)
class Position:
    """How far into the event stream the index is: every stream sequence up to ``seq`` of the
    stream ``stream`` (its identity: its creation time) that was written, at most."""

    stream: str
    seq: int


class RebuildBusy(Exception):
    """Another rebuild holds the lock (its heartbeat is fresh), or took this one over."""


@runtime_checkable
class RebuildTarget(Protocol):
    """The new copy a rebuild fills (from :meth:`SearchBackend.begin_rebuild`)."""

    async def write(self, docs: list[Doc], removals: list[Removal]) -> None:
        """Index into the new copy (versions apply, as everywhere)."""

    async def progress(self, done: int, total: int) -> None:
        """Record progress; also the lock's heartbeat. Raises :class:`RebuildBusy` when
        another rebuild took over (this one went stale)."""

    async def finish(self, position: Position | None) -> None:
        """Make the new copy the one searched and written, drop the old, record ``position``
        (the stream position the rebuild started from) and release the lock."""

    async def abort(self) -> None:
        """Drop the new copy and release the lock; the current copy stays as it was."""


@dataclass(frozen=True)
class Hit:
    event: dict[str, Any]
    highlight: str
    """The body, HTML-escaped, matches in ``<mark>…</mark>``; a fragment of ≤ ~300 characters."""


@dataclass(frozen=True)
class Page:
    hits: list[Hit]
    next_cursor: str | None
    """Opaque and URL-safe; None on the last page."""


@runtime_checkable
class SearchBackend(Protocol):
    """What the search service needs from its store. All methods are coroutines."""

    async def start(self) -> None:
        """Create what is missing (tables; an index template and an index behind an alias).
        Idempotent: safe on every start-up, by several processes at once."""

    async def close(self) -> None:
        """Release connections. The backend is unusable afterwards."""

    async def write(self, docs: list[Doc], removals: list[Removal], position: Position | None = None) -> None:
        """Index ``docs`` and apply ``removals`` (each only where no newer version is known),
        and raise the stored ``position`` of its stream, in one request or transaction. While a
        rebuild runs, also into its new copy. Raises :class:`BackendUnavailable` when the
        backend cannot take it (retry later), ``ValueError`` for a malformed document."""

    async def upsert(self, docs: list[Doc]) -> None:
        """``write(docs, [])``: index or replace each doc by its key ``(conv, seq)``; idempotent."""

    async def delete(self, keys: list[tuple[str, int]]) -> None:
        """Remove these ``(conv, seq)`` for good (:data:`UNVERSIONED_DELETE`); missing keys
        are fine (idempotent)."""

    async def position(self, stream: str) -> int | None:
        """The stored position in ``stream`` (None: nothing was written from it)."""

    async def begin_rebuild(self, owner: str, stale_after_s: float = 60.0) -> RebuildTarget:
        """Take the rebuild lock and create the new copy; from the return on, every live
        write (of any process) also goes into it. Raises :class:`RebuildBusy`."""

    async def rebuild_state(self) -> dict[str, Any] | None:
        """The running rebuild (``owner``, ``started``, ``heartbeat``, ``done``, ``total``), or None."""

    async def delete_conv(self, conv: str) -> None:
        """Remove every message of a conversation."""

    async def search(self, q: str, convs: list[str], limit: int, cursor: str | None, conv: str | None = None) -> Page:
        """The ``limit`` (clamped to 1..100) most relevant hits for ``q`` among ``convs``
        (narrowed to ``conv`` when given), after ``cursor``. Raises :class:`QueryInvalid`
        for unusable text or a foreign cursor, :class:`BackendUnavailable` when down."""

    async def ping(self) -> None:
        """Return when usable; raise :class:`BackendUnavailable` otherwise (``/readyz``)."""


def clamp_limit(limit: int) -> int:
    """``limit`` forced into ``1..MAX_LIMIT`` (0 → 1, 10**6 → 100)."""
    return max(1, min(MAX_LIMIT, int(limit)))
