"""Pure rules of the messages service: validation and the role checks used so far."""

from __future__ import annotations

import re
import unicodedata

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import ROLE_RANK
from chat_proto.messages_api import clean_body

__all__ = ["at_least", "clean_body", "clean_name", "dm_key", "hidden_or_forbidden", "outranks"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_name(name: str | None, max_len: int = 80) -> str:
    """Channel names: control characters stripped, whitespace folded, 1..max_len characters."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", name or ""))
    text = " ".join(text.split())
    if not text:
        raise ChatError(ErrorCode.INVALID, "name is required for a channel")
    if len(text) > max_len:
        raise ChatError(ErrorCode.INVALID, f"name longer than {max_len} characters")
    return text


def outranks(actor_role: str, target_role: str) -> bool:
    return ROLE_RANK[actor_role] > ROLE_RANK[target_role]


def at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


def hidden_or_forbidden(kind: str, private: bool) -> ChatError:
    """What a non-member is told: 404 for anything private (no existence leak), else 403."""
    if kind == "channel" and not private:
        return ChatError(ErrorCode.FORBIDDEN, "join the channel first")
    return ChatError(ErrorCode.NOT_FOUND, "no such conversation")


def dm_key(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{x}:{y}"
