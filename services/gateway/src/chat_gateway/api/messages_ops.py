"""REST ``/v1``: message edits and deletes (PROTOCOL §3) and receipts (§4; the ``POST`` is
our extension for clients without a socket). Validates, then forwards to the messages
service over NATS RPC, which checks who may do what."""

from __future__ import annotations

import re
from typing import Annotated, Any

from chat_proto import bounds, messages_api, ops
from chat_proto.bounds import MAX_SEQ
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.ops import wire
from chat_proto.subjects import ID_PATTERN
from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from chat_gateway.api.deps import Caller, Res
from chat_gateway.openapi import NONBLANK_TEXT, problems

router = APIRouter(prefix="/v1")

ConvId = Annotated[str, Path(max_length=64)]
Seq = Annotated[int, Path(ge=0, le=MAX_SEQ)]
_ID = re.compile(ID_PATTERN)


def _conv(conv: str) -> str:
    if not _ID.match(conv):
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    return conv


class EditBody(BaseModel):
    """The new text: not blank once control characters are removed and it is trimmed; longer
    than the server's limit (4000 characters by default) then: 413."""

    model_config = ConfigDict(extra="ignore")
    body: str = Field(max_length=64 * 1024, json_schema_extra={"pattern": NONBLANK_TEXT})


@router.patch(
    "/conversations/{conv}/messages/{seq}",
    responses=problems(403, 404, 413, d403="only the sender may edit a message", d413="the text is too long"),
)
async def edit_message(conv: ConvId, seq: Seq, body: EditBody, caller: Caller, res: Res) -> Any:
    req = messages_api.EditMessage(conv=_conv(conv), seq=seq, body=body.body)
    return wire(await res.rpc.request(ops.messages.MSG_EDIT, req, user=caller.user_id))


@router.delete("/conversations/{conv}/messages/{seq}", responses=problems(403, 404))
async def delete_message(conv: ConvId, seq: Seq, caller: Caller, res: Res) -> Any:
    req = messages_api.MessageRef(conv=_conv(conv), seq=seq)
    return wire(await res.rpc.request(ops.messages.MSG_DELETE, req, user=caller.user_id))


@router.get("/conversations/{conv}/receipts", responses=problems(403, 404))
async def list_receipts(conv: ConvId, caller: Caller, res: Res) -> Any:
    return wire(
        await res.rpc.request(ops.messages.RECEIPTS_LIST, messages_api.ConvRef(conv=_conv(conv)), user=caller.user_id)
    )


class ReceiptBody(BaseModel):
    """At least one of the two."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"required": ["delivered_seq"], "properties": {"delivered_seq": {"type": "integer"}}},
                {"required": ["read_seq"], "properties": {"read_seq": {"type": "integer"}}},
            ]
        },
    )
    delivered_seq: bounds.Seq | None = None
    read_seq: bounds.Seq | None = None


@router.post("/conversations/{conv}/receipts", status_code=204, responses=problems(403, 404))
async def set_receipts(conv: ConvId, body: ReceiptBody, caller: Caller, res: Res) -> Response:
    if body.delivered_seq is None and body.read_seq is None:
        raise ChatError(ErrorCode.INVALID, "give delivered_seq and/or read_seq")
    req = messages_api.SetReceipt(conv=_conv(conv), delivered_seq=body.delivered_seq, read_seq=body.read_seq)
    await res.rpc.request(ops.messages.RECEIPTS_SET, req, user=caller.user_id)
    return Response(status_code=204)
