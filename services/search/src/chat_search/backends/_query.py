"""What both backends share: the user's text parsed into terms, cursors, timestamps.

The query language is deliberately tiny, and identical on both backends:

- whitespace separates terms; ``"double quotes"`` group words into one term (a phrase);
- a term matches as a phrase (its words adjacent, in order): ``foo.png`` is ``foo`` then
  ``png``, ``report-2024`` is ``report`` then ``2024``;
- a message matches when at least one term does; more matching terms rank higher.

Everything else the user types is text. No character is an operator, so there is nothing to
escape and nothing to inject: the terms are handed to the backends as values (an OpenSearch
``multi_match`` query string, an FTS5 string literal bound as a parameter). Control
characters and lone surrogates (which JSON and SQLite cannot carry) become spaces.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chat_search.backends import MAX_QUERY_CHARS, MAX_TERMS, QueryInvalid

# Scripts written without spaces between words (Han, Kana, Hangul syllables and jamo, their
# half/full-width forms): a word is found *inside* a run of them by substring search.
_SPACELESS_CLASS = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
SO_SCAN_LIMIT = 0x20000  # every "So" (other symbol) character is below it (Unicode 15: U+1FBCA)


def _symbol_class() -> str:
    """The "So" characters as a regex class body (emoji, dingbats, ...), built once."""
    ranges: list[tuple[int, int]] = []
    for cp in range(SO_SCAN_LIMIT):
        if unicodedata.category(chr(cp)) == "So":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges)


# Characters only substring search finds: a spaceless script, or a symbol. One compiled
# class, so that checking a whole text is one C-level scan (on every document indexed).
_SUBSTRING = re.compile(f"[{_SPACELESS_CLASS}{_symbol_class()}]")
_CHUNK = re.compile(r'"([^"]*)"|([^\s"]+)')
_MAX_CURSOR_CHARS = 1024
_MAX_KEY_STR = 1024
_INT64 = 1 << 63


@dataclass(frozen=True)
class Term:
    """One term of a query: ``text`` is matched as a phrase.

    ``words``: it has letters or digits (a word index can match it). ``substring``: it has
    characters of a spaceless script or symbols such as emoji (matched as a substring by
    the SQLite backend, whose word tokenizer keeps a CJK sentence as one token)."""

    text: str
    words: bool
    substring: bool


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[Term, ...]
    fingerprint: str
    """Identifies the query (terms and ``conv``): a cursor is only valid for the same one."""


def _is_substring_char(ch: str) -> bool:
    return _SUBSTRING.match(ch) is not None


def has_substring_chars(text: str) -> bool:
    """Whether ``text`` has a character that only substring search finds (a document
    without one can never match a ``substring`` term). ASCII has none: most chat text is
    answered without a scan."""
    return not text.isascii() and _SUBSTRING.search(text) is not None


def gram_token(chars: str) -> str:
    """The index token of one or two substring characters: ASCII, one word to any word
    tokenizer (``北京`` -> ``g5317x4eac``)."""
    return "g" + "x".join(f"{ord(ch):x}" for ch in chars)


def grams_of(*texts: str) -> str:
    """Every single substring character of ``texts`` and every adjacent pair of them, as
    tokens: a term of one or two such characters is in a text exactly when its token is in
    this (what ``LIKE '%term%'`` finds, from an index)."""
    out: dict[str, None] = {}
    for text in texts:
        prev = ""
        for ch in text:
            if not _is_substring_char(ch):
                prev = ""
                continue
            out[gram_token(ch)] = None
            if prev:
                out[gram_token(prev + ch)] = None
            prev = ch
    return " ".join(out)


def short_substring_term(text: str) -> bool:
    """A term of one or two characters, all substring characters (its token is in
    :func:`grams_of`); longer ones go to the trigram index, mixed ones to ``LIKE``."""
    return 0 < len(text) <= 2 and all(_is_substring_char(ch) for ch in text)


def _clean(q: str) -> str:
    """Control characters (NUL included) and lone surrogates become spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in q)


def parse_query(q: str, conv: str | None = None) -> ParsedQuery:
    """The terms of ``q``; :class:`QueryInvalid` when it is too long or has no term at all
    (``*``, ``/.*/``, ``"``, punctuation only)."""
    if not isinstance(q, str):
        raise QueryInvalid("the query must be text")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryInvalid(f"the query is longer than {MAX_QUERY_CHARS} characters")
    terms: list[Term] = []
    seen: set[str] = set()
    for m in _CHUNK.finditer(_clean(q)):
        text = " ".join((m.group(1) if m.group(1) is not None else m.group(2)).split())
        words = any(ch.isalnum() for ch in text)
        substring = any(_is_substring_char(ch) for ch in text)
        key = text.casefold()
        if not (words or substring) or key in seen:
            continue
        seen.add(key)
        terms.append(Term(text, words, substring))
        if len(terms) == MAX_TERMS:
            break
    if not terms:
        raise QueryInvalid("the query has no words to search for")
    ident = json.dumps([[t.text.casefold() for t in terms], conv], ensure_ascii=True)
    return ParsedQuery(tuple(terms), hashlib.sha256(ident.encode()).hexdigest()[:16])


# -- cursors ------------------------------------------------------------------------------
def encode_cursor(backend: str, fingerprint: str, key: list[Any]) -> str:
    """base64url (unpadded) JSON ``{"b": backend, "q": fingerprint, "k": sort key}``."""
    raw = json.dumps({"b": backend, "q": fingerprint, "k": key}, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, backend: str, fingerprint: str) -> tuple[float, int, str, int]:
    """The sort key ``(score, ts_ms, conv, seq)`` in ``cursor``, checked: made by
    ``backend`` for the same query, each value of the right type and range. Anything else
    raises :class:`QueryInvalid`."""
    bad = QueryInvalid("invalid cursor")
    if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR_CHARS:
        raise bad
    if not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad from e
    if not isinstance(data, dict) or set(data) != {"b", "q", "k"}:
        raise bad
    if data["b"] != backend or data["q"] != fingerprint:
        raise QueryInvalid("the cursor belongs to another query")
    key = data["k"]
    if not isinstance(key, list) or len(key) != 4:
        raise bad
    score, ts, conv, seq = key
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise bad
    for n in (ts, seq):
        if isinstance(n, bool) or not isinstance(n, int) or not -_INT64 <= n < _INT64:
            raise bad
    if not isinstance(conv, str) or len(conv) > _MAX_KEY_STR:
        raise bad
    return float(score), ts, conv, seq


# -- timestamps ---------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts_millis(ts: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp (UTC when it has no offset),
    computed exactly (no float); ValueError when it is not one."""
    dt = datetime.fromisoformat(ts)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)
