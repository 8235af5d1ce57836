"""REST ``/v1``: conversation settings (rename, topic, description, archive) and the public
channel directory. Validates, then forwards to the messages service over NATS RPC."""

from __future__ import annotations

import re
from typing import Annotated, Any

from chat_proto import messages_api, ops
from chat_proto.bounds import INT64_MAX, INT64_MIN, clamp
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.ops import wire
from chat_proto.subjects import ID_PATTERN
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from chat_gateway.api.deps import Caller, Res
from chat_gateway.openapi import problems

router = APIRouter(prefix="/v1")

ConvId = Annotated[str, Path(max_length=64)]
_ID = re.compile(ID_PATTERN)


def _conv(conv: str) -> str:
    if not _ID.match(conv):
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    return conv


class PatchBody(BaseModel):
    """Absent: unchanged. ``topic``/``description`` null or "" clear; ``name`` null → 422.
    At least one of them. Cleaned (control and invisible characters removed, whitespace
    folded) a name has 1..80 characters and only channels have one, a topic at most 250, a
    description at most 1000 (422 otherwise)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"anyOf": [{"required": ["name"]}, {"required": ["topic"]}, {"required": ["description"]}]},
    )
    name: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 400})] = Field(
        default=None, max_length=400
    )
    topic: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=4000)


@router.patch("/conversations/{conv}", responses=problems(403, 404, 409, d409="a channel with this name exists"))
async def update_conversation(conv: ConvId, body: PatchBody, caller: Caller, res: Res) -> Any:
    given = body.model_fields_set
    if "name" in given and body.name is None:
        raise ChatError(ErrorCode.INVALID, "name cannot be null")
    req = messages_api.UpdateConversation(
        conv=_conv(conv),
        name=body.name,
        topic=(body.topic or "") if "topic" in given else None,
        description=(body.description or "") if "description" in given else None,
    )
    out = await res.rpc.request(ops.messages.CONV_UPDATE, req, user=caller.user_id)
    return wire(out.conversation)


async def _set_archived(conv: str, archived: bool, caller: Caller, res: Res) -> Any:
    req = messages_api.SetArchived(conv=_conv(conv), archived=archived)
    out = await res.rpc.request(ops.messages.CONV_ARCHIVE, req, user=caller.user_id)
    return wire(out.conversation)


@router.post("/conversations/{conv}/archive", responses=problems(403, 404))
async def archive(conv: ConvId, caller: Caller, res: Res) -> Any:
    return await _set_archived(conv, True, caller, res)


@router.post("/conversations/{conv}/unarchive", responses=problems(403, 404))
async def unarchive(conv: ConvId, caller: Caller, res: Res) -> Any:
    return await _set_archived(conv, False, caller, res)


@router.get("/channels")
async def directory(
    caller: Caller,
    res: Res,
    q: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX, description="clamped to 1..200")] = 50,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page")] = None,
) -> Any:
    """Public channels whose name contains ``q``, by name. A cursor the server did not make: 422."""
    req = messages_api.ChannelQuery(q=q, limit=clamp(limit, 1, 200), cursor=cursor or None)
    return wire(await res.rpc.request(ops.messages.CHANNELS_LIST, req, user=caller.user_id))
