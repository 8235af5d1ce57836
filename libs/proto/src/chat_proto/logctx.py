"""Ids bound to what a task is doing (the RPC being handled, the connection being served),
added to every log line it writes (chat_common.logging) without passing them around."""

from __future__ import annotations

import contextvars
from typing import Any

_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("chat_log_context", default=None)


def bind(**ids: Any) -> None:
    """Add ids (request, user, conv, conn, …) for the rest of this task and what it starts."""
    current = _bound.get() or {}
    _bound.set({**current, **{k: v for k, v in ids.items() if v is not None}})


def bound() -> dict[str, Any]:
    return _bound.get() or {}
