"""REST ``/v1``: blocks, privacy settings and hiding a conversation (hardening §5). The
messages service owns them and applies them where it creates conversations, adds members
and stores sends; the presence service asks it who may see whom."""

from __future__ import annotations

from typing import Annotated, Any

from chat_proto import messages_api, ops
from chat_proto.ops import wire
from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from chat_gateway.api.deps import Caller, Res
from chat_gateway.api.messages_ops import ConvId, _conv
from chat_gateway.openapi import problems

router = APIRouter(prefix="/v1")

UserId = Annotated[str, Path(pattern=messages_api.ID, max_length=64)]


class BlockBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str = Field(pattern=messages_api.ID)


@router.post("/me/blocks", status_code=204, responses=problems(404, d404="no such user"))
async def block(body: BlockBody, caller: Caller, res: Res) -> Response:
    await res.rpc.request(ops.messages.BLOCKS_ADD, messages_api.BlockRef(user_id=body.user_id), user=caller.user_id)
    return Response(status_code=204)


@router.get("/me/blocks")
async def blocks(caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.messages.BLOCKS_LIST, user=caller.user_id))


@router.delete("/me/blocks/{user_id}", status_code=204)
async def unblock(user_id: UserId, caller: Caller, res: Res) -> Response:
    await res.rpc.request(ops.messages.BLOCKS_REMOVE, messages_api.BlockRef(user_id=user_id), user=caller.user_id)
    return Response(status_code=204)


@router.get("/me/settings")
async def settings(caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.messages.SETTINGS_GET, user=caller.user_id))


@router.put("/me/settings")
async def set_settings(body: messages_api.PrivacySettings, caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.messages.SETTINGS_SET, body, user=caller.user_id))


@router.post("/conversations/{conv}/hide", status_code=204, responses=problems(404))
async def hide(conv: ConvId, caller: Caller, res: Res) -> Response:
    await res.rpc.request(ops.messages.CONV_HIDE, messages_api.ConvRef(conv=_conv(conv)), user=caller.user_id)
    return Response(status_code=204)
