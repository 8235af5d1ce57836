"""Highlights computed in Python: the SQLite backend's, and OpenSearch's fallback.

The body is HTML-escaped piece by piece and only our own ``<mark>``/``</mark>`` tags are
added, so a body holding ``<script>`` comes out as ``&lt;script&gt;``. Matching mirrors the
SQLite tokenizers: a word term matches whole words, case- and accent-insensitively
(``unicode61 remove_diacritics 2``), its words separated by any non-word characters (so
``foo.png`` marks ``foo.png``); a term of a spaceless script (CJK) or with symbols
(emoji) matches as a case-insensitive substring (``trigram`` / ``LIKE``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from chat_search.backends._query import Term

MAX_FRAGMENT = 300
_BEFORE = 60  # characters of context kept before the first match of a long body
_ELLIPSIS = "…"


@lru_cache(maxsize=8192)
def _fold(ch: str) -> str:
    """``ch`` without accents, case-folded (may be 0..n characters)."""
    decomposed = unicodedata.normalize("NFD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _folded(text: str) -> tuple[str, list[int] | None]:
    """``text`` folded, and for each folded character the index of its source character
    (None: the same index; ASCII text, most chat, folds character for character)."""
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        f = _fold(ch)
        out.append(f)
        origin.extend([i] * len(f))
    return "".join(out), origin


@lru_cache(maxsize=1024)
def _pattern(term: Term) -> re.Pattern[str] | None:
    folded = "".join(_fold(ch) for ch in term.text)
    if term.substring:
        return re.compile(re.escape(folded)) if folded else None
    words = re.findall(r"[^\W_]+", folded)
    if not words:
        return None
    return re.compile(r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])")


def match_spans(body: str, terms: Sequence[Term]) -> list[tuple[int, int]]:
    """Sorted, merged ``(start, end)`` spans of ``body`` that the terms match."""
    folded, origin = _folded(body)
    spans: list[tuple[int, int]] = []
    for term in terms:
        pattern = _pattern(term)
        if pattern is None:
            continue
        for m in pattern.finditer(folded):
            if m.end() > m.start():
                if origin is None:
                    spans.append((m.start(), m.end()))
                else:
                    spans.append((origin[m.start()], origin[m.end() - 1] + 1))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def highlight(body: str, terms: Sequence[Term], max_chars: int = MAX_FRAGMENT) -> str:
    """A fragment of ``body`` (≤ ``max_chars`` characters of text, around the first
    match), HTML-escaped, with the matches in ``<mark>``; the escaped start of the body
    when nothing matches in it (a hit on an attachment name)."""
    spans = match_spans(body, terms)
    start, end = 0, len(body)
    if len(body) > max_chars:
        first = spans[0][0] if spans else 0
        start = max(0, min(first - _BEFORE, len(body) - max_chars))
        if start > 0:  # begin at a word boundary when one is near
            space = body.rfind(" ", start - 20 if start >= 20 else 0, start + 20)
            start = space + 1 if space >= 0 else start
        end = min(len(body), start + max_chars)
    out: list[str] = [_ELLIPSIS] if start > 0 else []
    pos = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        out += [html.escape(body[pos:s]), "<mark>", html.escape(body[s:e]), "</mark>"]
        pos = e
    out.append(html.escape(body[pos:end]))
    if end < len(body):
        out.append(_ELLIPSIS)
    return "".join(out)
