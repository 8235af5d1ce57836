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
    "BackendUnavailable",
    "Doc",
    "Hit",
    "Page",
    "QueryInvalid",
    "SearchBackend",
    "clamp_limit",
]

MAX_QUERY_CHARS = 1000
"""Longer query text is refused (:class:`QueryInvalid`)."""
MAX_TERMS = 32
"""Terms beyond the first 32 distinct ones are ignored (a pasted paragraph still searches)."""
MAX_LIMIT = 100
"""``limit`` is clamped to ``1..MAX_LIMIT``."""


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

    async def upsert(self, docs: list[Doc]) -> None:
        """Index or replace each doc by its key ``(conv, seq)``; idempotent."""

    async def delete(self, keys: list[tuple[str, int]]) -> None:
        """Remove these ``(conv, seq)``; missing keys are fine (idempotent)."""

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
