"""Pure rules of the messages service: validation and normalisation of names and texts.

Who may do what lives in ``permissions.py``.
"""

from __future__ import annotations

import re
import unicodedata

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import clean_body

__all__ = ["clean_body", "clean_name", "clean_text", "dm_key", "like_pattern", "name_key"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_NAME = 80
MAX_TOPIC = 250
MAX_DESCRIPTION = 1000


def _fold(text: str) -> str:
    """NFC; whitespace (line breaks and tabs included) folded to one space; other control
    characters removed; trimmed."""
    spaced = " ".join(unicodedata.normalize("NFC", text).split())
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
    """What makes two channel names the same: case-insensitive after NFC and whitespace
    folding (``casefold``, so "Straße" and "STRASSE" collide)."""
    return unicodedata.normalize("NFC", _fold(name).casefold())


def like_pattern(q: str) -> str:
    """A LIKE pattern matching ``q`` as a substring of a name key (escape character ``\\``)."""
    key = name_key(q)
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def dm_key(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{x}:{y}"
