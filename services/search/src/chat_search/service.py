"""Search queries: the caller's conversations (asked of messages, cached briefly, and kept
when messages is down so search stays up read-only) are the filter every query carries."""

from __future__ import annotations

import time
from typing import Any

from chat_bus.rpc import RpcClient
from chat_proto import ops
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.messages_api import EventsRange, UserRef
from chat_proto.search_api import MAX_LIMIT, SearchQuery
from prometheus_client import Histogram

from chat_search.backends import BackendUnavailable, QueryInvalid, SearchBackend

QUERY_SECONDS = Histogram(
    "chat_search_query_seconds",
    "One search query (the caller's conversations and the index)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)


class SearchService:
    def __init__(self, backend: SearchBackend, rpc: RpcClient, convs_cache_s: float) -> None:
        self.backend = backend
        self.rpc = rpc
        self.cache_s = convs_cache_s
        self._convs: dict[str, tuple[float, list[str]]] = {}

    async def query(self, user: str, req: SearchQuery) -> dict[str, Any]:
        started = time.perf_counter()
        convs = await self.convs_of(user)
        if req.conv is not None and req.conv not in convs:
            convs = []  # not the caller's: nothing (the same answer as no match)
        try:
            page = await self.backend.search(req.q, convs, max(1, min(MAX_LIMIT, req.limit)), req.cursor, conv=req.conv)
        except QueryInvalid as exc:
            raise ChatError(ErrorCode.INVALID, f"q: {exc}") from None
        except BackendUnavailable as exc:
            raise ChatError(ErrorCode.UNAVAILABLE, "search is unavailable; retry", retry_after_ms=2000) from exc
        finally:
            QUERY_SECONDS.observe(time.perf_counter() - started)
        return {
            "hits": [{"event": h.event, "highlight": h.highlight} for h in page.hits],
            "next_cursor": page.next_cursor,
        }

    async def convs_of(self, user: str) -> list[str]:
        now = time.monotonic()
        hit = self._convs.get(user)
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        try:
            res = await self.rpc.request(ops.messages.USER_CONVS, UserRef(user_id=user))
        except ChatError:
            if hit is not None:  # messages is down: the last known conversations
                return hit[1]
            raise
        convs = [c.id for c in res.convs]
        if len(self._convs) > 50_000:
            self._convs = {u: v for u, v in self._convs.items() if now - v[0] < self.cache_s}
        self._convs[user] = (now, convs)
        return convs

    async def message(self, conv: str, seq: int) -> dict[str, Any] | None:
        """The stored message ``conv#seq`` (for an edit of a message not in the batch)."""
        res = await self.rpc.request(ops.messages.EVENTS, EventsRange(conv=conv, after=seq - 1, before=seq + 1))
        for e in res.events:
            if e.seq == seq and e.kind == "message":
                return ops.wire(e)
        return None
