"""Pure rules of the messages service: validation and normalisation of names and texts.

Who may do what lives in ``permissions.py``.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import confusables
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import clean_body
from chat_proto.text import strip_hidden

__all__ = ["clean_body", "clean_name", "clean_text", "dm_key", "like_pattern", "name_key"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_NAME = 80
MAX_TOPIC = 250
MAX_DESCRIPTION = 1000


def _fold(text: str) -> str:
    """NFC; whitespace (line breaks and tabs included) folded to one space; other control
    characters, bidirectional controls and invisible formatting characters removed
    (chat_proto.text); trimmed."""
    spaced = " ".join(strip_hidden(unicodedata.normalize("NFC", text)).split())
    return " ".join(_CONTROL.sub("", spaced).split())


def clean_name(name: str | None, max_len: int = MAX_NAME) -> str:
    """Channel names: control characters stripped, whitespace folded, 1..max_len characters."""
    text = _fold(name or "")
    if not text:
        raise ChatError(ErrorCode.INVALID, "name is required for a channel")
    if len(text) > max_len:
        raise ChatError(ErrorCode.INVALID, f"name longer than {max_len} characters")
    return text


def clean_text(text: str | None, field: str, max_len: int) -> str:
    """Topic and description: NFC, control characters stripped (line breaks included),
    whitespace folded and trimmed; 0..max_len characters ("" clears)."""
    out = _fold(text or "")
    if len(out) > max_len:
        raise ChatError(ErrorCode.INVALID, f"{field} longer than {max_len} characters")
    return out


def name_key(name: str) -> str:
    """What makes two channel names the same: case-insensitive (``casefold``, so "Straße"
    and "STRASSE" collide) and alike to the eye (``skeleton``: "general" spelt with a
    Cyrillic "e", or in fullwidth letters, collides with "general")."""
    return skeleton(_fold(name))


def skeleton(text: str) -> str:
    """A simplified TR39 skeleton: NFKC (fullwidth and mathematical letters become plain
    ones), case folded, decomposed (an accent stays an accent: "café" is not "cafe"), and
    each other non-ASCII character that looks like an ASCII letter or digit (per the Unicode
    confusables data of the ``confusables`` package) replaced by it. ASCII stays as it is,
    so "team1" and "teaml" remain two names. Only for comparing, never shown."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return unicodedata.normalize("NFC", "".join(_prototype(c) for c in folded))


@functools.lru_cache(maxsize=8192)
def _prototype(ch: str) -> str:
    if ch.isascii():
        return ch
    looks_like = [c for c in confusables.confusable_characters(ch) or () if len(c) == 1 and c.isascii() and c.isalnum()]
    letters = sorted(c for c in looks_like if c.islower())
    digits = sorted(c for c in looks_like if c.isdigit())
    return str((letters or digits or [ch])[0])


def like_pattern(q: str) -> str:
    """A LIKE pattern matching ``q`` as a substring of a name key (escape character ``\\``)."""
    key = name_key(q)
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def dm_key(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{x}:{y}"
