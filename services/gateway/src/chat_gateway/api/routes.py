"""REST ``/v1``: validate, then forward to the owning service over NATS request/reply."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from chat_proto import auth_api, messages_api, ops
from chat_proto.bounds import INT64_MAX, INT64_MIN, MAX_SEQ, ClientMsgId, SeqRef, clamp
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.media_api import AttachmentIds
from chat_proto.ops import wire
from chat_proto.subjects import ID_PATTERN
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from chat_gateway.api.deps import Caller, LoginBudget, RefreshBudget, RegisterBudget, Res

router = APIRouter(prefix="/v1")

ConvId = Annotated[str, Path(max_length=64)]
UserId = Annotated[str, Path(max_length=64)]


_ID = re.compile(ID_PATTERN)


def _conv(conv: str) -> str:
    if not _ID.match(conv):
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    return conv


# --- auth ----------------------------------------------------------------------------------
@router.post("/auth/register", status_code=201)
async def register(body: auth_api.RegisterRequest, res: Res, _: RegisterBudget) -> Any:
    return wire(await res.rpc.request(ops.auth.REGISTER, body))


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


@router.post("/auth/login")
async def login(body: LoginBody, res: Res, address: LoginBudget) -> Any:
    req = auth_api.LoginRequest(username=body.username, password=body.password, client_ip=address)
    return wire(await res.rpc.request(ops.auth.LOGIN, req))


@router.post("/auth/refresh")
async def refresh(body: auth_api.RefreshRequest, res: Res, _: RefreshBudget) -> Any:
    return wire(await res.rpc.request(ops.auth.REFRESH, body))


@router.post("/auth/logout", status_code=204)
async def logout(body: auth_api.RefreshRequest, res: Res) -> Response:
    await res.rpc.request(ops.auth.LOGOUT, body)
    return Response(status_code=204)


@router.get("/auth/jwks")
async def jwks(res: Res) -> Any:
    return wire(await res.rpc.request(ops.auth.JWKS))


@router.get("/me")
async def me(caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.auth.ME, user=caller.user_id))


# --- conversations -------------------------------------------------------------------------
@router.post("/conversations")
async def create_conversation(body: messages_api.CreateConversation, caller: Caller, res: Res) -> Any:
    out = await res.rpc.request(ops.messages.CONV_CREATE, body, user=caller.user_id)
    return JSONResponse(wire(out.conversation), status_code=201 if out.created else 200)


@router.get("/conversations")
async def list_conversations(caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.messages.CONV_LIST, user=caller.user_id))


@router.get("/conversations/{conv}")
async def get_conversation(conv: ConvId, caller: Caller, res: Res) -> Any:
    return wire(
        await res.rpc.request(ops.messages.CONV_GET, messages_api.ConvRef(conv=_conv(conv)), user=caller.user_id)
    )


@router.post("/conversations/{conv}/join")
async def join(conv: ConvId, caller: Caller, res: Res) -> Any:
    out = await res.rpc.request(ops.messages.CONV_JOIN, messages_api.ConvRef(conv=_conv(conv)), user=caller.user_id)
    return wire(out.conversation)


class AddMemberBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str = Field(max_length=64)
    role: Literal["owner", "admin", "member", "guest"] | None = None


@router.post("/conversations/{conv}/members")
async def add_member(conv: ConvId, body: AddMemberBody, caller: Caller, res: Res) -> Any:
    req = messages_api.AddMember(conv=_conv(conv), user_id=body.user_id, role=body.role)
    out = await res.rpc.request(ops.messages.CONV_ADD_MEMBER, req, user=caller.user_id)
    return wire(out.conversation)


@router.delete("/conversations/{conv}/members/{user_id}", status_code=204)
async def remove_member(conv: ConvId, user_id: UserId, caller: Caller, res: Res) -> Response:
    req = messages_api.MemberRef(conv=_conv(conv), user_id=user_id)
    await res.rpc.request(ops.messages.CONV_REMOVE_MEMBER, req, user=caller.user_id)
    return Response(status_code=204)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["owner", "admin", "member", "guest"]


@router.put("/conversations/{conv}/members/{user_id}/role")
async def set_role(conv: ConvId, user_id: UserId, body: RoleBody, caller: Caller, res: Res) -> Any:
    req = messages_api.SetRole(conv=_conv(conv), user_id=user_id, role=body.role)
    out = await res.rpc.request(ops.messages.CONV_SET_ROLE, req, user=caller.user_id)
    return wire(out.conversation)


# --- messages ------------------------------------------------------------------------------
@router.get("/conversations/{conv}/messages")
async def history(
    conv: ConvId,
    caller: Caller,
    res: Res,
    before: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX, description="clamped to 1..200")] = 50,
) -> Any:
    q = messages_api.HistoryQuery(conv=_conv(conv), before=before, after=after, limit=clamp(limit, 1, 200))
    page = wire(await res.rpc.request(ops.messages.HISTORY, q, user=caller.user_id))
    page["events"] = [res.signer.event(e, caller.user_id) for e in page.get("events", [])]
    return page


class SendBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    client_msg_id: ClientMsgId
    body: str
    attachments: AttachmentIds | None = None  # the sender's uploads; the body may then be empty
    reply_to: SeqRef | None = None


@router.post("/conversations/{conv}/messages")
async def send(conv: ConvId, body: SendBody, caller: Caller, res: Res) -> Any:
    out = await res.sender.send(
        caller.user_id, _conv(conv), body.client_msg_id, body.body, body.attachments, body.reply_to
    )
    return JSONResponse(res.signer.event(out.event, caller.user_id), status_code=201 if out.created else 200)
