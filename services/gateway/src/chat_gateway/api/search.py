"""REST ``GET /v1/search?q=&conv=&limit=&cursor=`` (PROTOCOL §5): forwarded to the search
service (any replica), which filters by the caller's conversations; the hits' attachments get
media URLs signed for the caller."""

from __future__ import annotations

from typing import Annotated, Any

from chat_proto import ops
from chat_proto.bounds import INT64_MAX, INT64_MIN
from chat_proto.ops import wire
from chat_proto.search_api import SearchQuery
from fastapi import APIRouter, Query

from chat_gateway.api.deps import Caller, Res

# chat_search.backends.MAX_QUERY_CHARS: longer queries are refused (422) by the search service.
MAX_QUERY_CHARS = 1000

router = APIRouter(prefix="/v1")


@router.get("/search")
async def search(
    caller: Caller,
    res: Res,
    q: Annotated[
        str,
        Query(
            max_length=4096,
            json_schema_extra={"maxLength": MAX_QUERY_CHARS},
            description='words and "quoted phrases"; with no word to search for: 422',
        ),
    ],
    conv: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX, description="clamped to 1..100")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="next_cursor of the previous page of the same query")
    ] = None,
) -> Any:
    """The caller's messages matching ``q``, most relevant first. A cursor the server did
    not make for this query: 422."""
    req = SearchQuery(q=q, conv=conv, limit=limit, cursor=cursor)
    page = wire(await res.rpc.request(ops.search.QUERY, req, user=caller.user_id, timeout=3.0))
    for hit in page.get("hits", []):
        hit["event"] = res.signer.event(hit["event"], caller.user_id)
    return page
