"""The search service's API (``svc.search.*``; PROTOCOL §5 search).

``query``: the caller (``Chat-User``) searches the messages of their conversations (``conv``
narrows to one): ``{hits: [{event, highlight}], next_cursor}``, most relevant first; each
hit's ``event`` is the ``message`` event with ``body`` its current text. Bad query text →
``invalid``; the index unavailable → ``unavailable``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chat_proto.bounds import INT64_MAX, INT64_MIN

MAX_LIMIT = 100


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str = Field(max_length=4096)
    conv: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    limit: int = Field(default=20, ge=INT64_MIN, le=INT64_MAX)  # clamped to 1..100
    cursor: str | None = Field(default=None, max_length=2048)


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="allow")
    event: dict[str, Any]
    highlight: str


class SearchPage(BaseModel):
    model_config = ConfigDict(extra="allow")
    hits: list[SearchHit]
    next_cursor: str | None = None
