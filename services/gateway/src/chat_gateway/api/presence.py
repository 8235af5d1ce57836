"""REST ``GET /v1/presence?user_ids=a,b``: forwarded to the presence service (any replica).

At most 100 distinct ids (422 beyond, and for none); ids that cannot be ids are omitted like
unknown ones. The presence service answers only for users sharing a conversation with the
caller (the caller included); the others are omitted, never reported.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from chat_proto import ops
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.ops import wire
from chat_proto.presence import MAX_QUERY_IDS, PresenceQuery
from chat_proto.subjects import ID_PATTERN
from fastapi import APIRouter, Query

from chat_gateway.api.deps import Caller, Res
from chat_gateway.openapi import NONBLANK_LIST

router = APIRouter(prefix="/v1")
_ID = re.compile(ID_PATTERN)


@router.get("/presence")
async def presence(
    caller: Caller,
    res: Res,
    user_ids: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_IDS * 66,
            description=f"comma-separated: at least one and at most {MAX_QUERY_IDS} distinct ids",
            json_schema_extra={"pattern": NONBLANK_LIST},
        ),
    ],
) -> Any:
    ids = list(dict.fromkeys(p.strip() for p in user_ids.split(",") if p.strip()))
    if not ids:
        raise ChatError(ErrorCode.INVALID, "user_ids: give at least one id")
    if len(ids) > MAX_QUERY_IDS:
        raise ChatError(ErrorCode.INVALID, f"user_ids: at most {MAX_QUERY_IDS} ids")
    valid = [u for u in ids if _ID.match(u)]
    if not valid:
        return {"presence": []}
    return wire(await res.rpc.request(ops.presence.QUERY, PresenceQuery(user_ids=valid), user=caller.user_id))
