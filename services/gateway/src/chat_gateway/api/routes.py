"""REST ``/v1``: validate, then forward to the owning service over NATS request/reply."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import orjson
from chat_proto import auth_api, messages_api, ops
from chat_proto.bounds import INT64_MAX, INT64_MIN, MAX_SEQ, ClientMsgId, SeqRef, clamp
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.media_api import AttachmentIds
from chat_proto.ops import wire
from chat_proto.subjects import ID_PATTERN
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from chat_gateway.api.deps import Caller, LoginBudget, RefreshBudget, RegisterBudget, Res, Resources
from chat_gateway.openapi import NONBLANK_TEXT, problems
from chat_gateway.web import require_origin

router = APIRouter(prefix="/v1")

ConvId = Annotated[str, Path(max_length=64)]
UserId = Annotated[str, Path(max_length=64)]


_ID = re.compile(ID_PATTERN)


def _conv(conv: str) -> str:
    if not _ID.match(conv):
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    return conv


# --- auth ----------------------------------------------------------------------------------
class RegisterAnswer(BaseModel):
    user: auth_api.UserOut


class SessionAnswer(BaseModel):
    """The token pair of login and refresh (``auth_api.TokenPair``)."""

    access_token: str = Field(description="for `Authorization: Bearer`; valid for `expires_in` seconds")
    refresh_token: str | SkipJsonSchema[None] = Field(
        default=None,
        description="absent with the cookie session: it is in the HttpOnly cookie chat_refresh instead",
    )
    token_type: str = Field(description="Bearer")
    expires_in: int
    user: auth_api.UserOut


@router.post(
    "/auth/register",
    status_code=201,
    responses={
        201: {"model": RegisterAnswer},
        **problems(
            403, 409, 429, d403="wrong bootstrap_token", d409="the username is taken, or the first admin exists"
        ),
    },
)
async def register(body: auth_api.RegisterRequest, res: Res, _: RegisterBudget) -> Any:
    return wire(await res.rpc.request(ops.auth.REGISTER, body))


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    session: Literal["body", "cookie"] = Field(
        default="body",
        description="cookie: the refresh token goes into the HttpOnly cookie chat_refresh (Path=/v1/auth) "
        "instead of the answer (browsers; needs an allowed Origin)",
    )


class RefreshBody(BaseModel):
    """``refresh_token`` in the body, or none: the ``chat_refresh`` cookie is used."""

    model_config = ConfigDict(extra="ignore")
    refresh_token: str | None = Field(default=None, min_length=1, max_length=512)


REFRESH_COOKIE = "chat_refresh"
ORIGIN_REFUSED = "the session cookie was used from an Origin that is not allowed"
BAD_REFRESH = "no refresh token, or an invalid, expired or revoked one"
COOKIE_PATH = "/v1/auth"


def _secure(request: Request, res: Resources) -> bool:
    mode = res.settings.cookie_secure
    if mode != "auto":
        return mode == "always"
    if request.url.scheme == "https":
        return True
    try:  # X-Forwarded-Proto only from a trusted proxy
        peer = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    if not any(peer in n for n in res.trusted_proxies):
        return False
    return request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"


def _with_cookie(answer: dict[str, Any], request: Request, res: Resources) -> JSONResponse:
    """The token pair with its refresh token moved into the cookie."""
    token = answer.pop("refresh_token")
    response = JSONResponse(answer)
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=res.settings.refresh_cookie_max_age_s,
        path=COOKIE_PATH,
        secure=_secure(request, res),
        httponly=True,
        samesite="strict",
    )
    return response


def _refresh_token(body: RefreshBody | None, request: Request, res: Resources) -> tuple[str, bool]:
    """The token to use and whether it came from the cookie (which needs an allowed Origin)."""
    if body is not None and body.refresh_token is not None:
        return body.refresh_token, False
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie or len(cookie) > 512:
        raise ChatError(ErrorCode.UNAUTHORIZED, "no refresh token (body field refresh_token or the session cookie)")
    require_origin(request, res.settings.allowed_origins)
    return cookie, True


@router.post(
    "/auth/login",
    responses={
        200: {"model": SessionAnswer, "description": "Signed in (session=cookie: the refresh token is in the cookie)"},
        **problems(
            401, 403, 429, d401="wrong username or password, or the account is deactivated", d403=ORIGIN_REFUSED
        ),
    },
)
async def login(body: LoginBody, request: Request, res: Res, address: LoginBudget) -> Any:
    if body.session == "cookie":
        require_origin(request, res.settings.allowed_origins)
    req = auth_api.LoginRequest(username=body.username, password=body.password, client_ip=address)
    answer = wire(await res.rpc.request(ops.auth.LOGIN, req))
    return _with_cookie(answer, request, res) if body.session == "cookie" else answer


@router.post(
    "/auth/refresh",
    responses={
        200: {"model": SessionAnswer, "description": "A new token pair (the refresh token is rotated)"},
        **problems(401, 403, 429, d401=BAD_REFRESH, d403=ORIGIN_REFUSED),
    },
)
async def refresh(request: Request, res: Res, _: RefreshBudget, body: RefreshBody | None = None) -> Any:
    token, from_cookie = _refresh_token(body, request, res)
    answer = wire(await res.rpc.request(ops.auth.REFRESH, auth_api.RefreshRequest(refresh_token=token)))
    return _with_cookie(answer, request, res) if from_cookie else answer


@router.post("/auth/logout", status_code=204, responses=problems(401, 403, d401=BAD_REFRESH, d403=ORIGIN_REFUSED))
async def logout(request: Request, res: Res, body: RefreshBody | None = None) -> Response:
    token, from_cookie = _refresh_token(body, request, res)
    await res.rpc.request(ops.auth.LOGOUT, auth_api.RefreshRequest(refresh_token=token))
    response = Response(status_code=204)
    if from_cookie:
        response.delete_cookie(REFRESH_COOKIE, path=COOKIE_PATH, secure=_secure(request, res), httponly=True)
    return response


@router.get("/auth/jwks")
async def jwks(res: Res) -> Any:
    return wire(await res.rpc.request(ops.auth.JWKS))


@router.get("/me", responses={200: {"model": auth_api.MeOut}, **problems(404)})
async def me(caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.auth.ME, user=caller.user_id))


# --- conversations -------------------------------------------------------------------------
@router.post(
    "/conversations",
    status_code=201,
    responses={
        200: {
            "description": "The dm with this user exists already: it is returned",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problems(403, 409, d403="a member does not accept this", d409="a channel with this name exists"),
    },
)
async def create_conversation(body: messages_api.CreateConversation, caller: Caller, res: Res) -> Any:
    out = await res.rpc.request(ops.messages.CONV_CREATE, body, user=caller.user_id)
    return JSONResponse(wire(out.conversation), status_code=201 if out.created else 200)


@router.get("/conversations")
async def list_conversations(caller: Caller, res: Res) -> Any:
    return wire(await res.rpc.request(ops.messages.CONV_LIST, user=caller.user_id))


@router.get("/conversations/{conv}", responses=problems(403, 404))
async def get_conversation(conv: ConvId, caller: Caller, res: Res) -> Any:
    return wire(
        await res.rpc.request(ops.messages.CONV_GET, messages_api.ConvRef(conv=_conv(conv)), user=caller.user_id)
    )


@router.post("/conversations/{conv}/join", responses=problems(403, 404))
async def join(conv: ConvId, caller: Caller, res: Res) -> Any:
    out = await res.rpc.request(ops.messages.CONV_JOIN, messages_api.ConvRef(conv=_conv(conv)), user=caller.user_id)
    return wire(out.conversation)


class AddMemberBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str = Field(max_length=64)
    # An owner is never added (422: ownership is given with PUT …/role).
    role: Annotated[
        Literal["owner", "admin", "member", "guest"] | None,
        WithJsonSchema({"anyOf": [{"type": "string", "enum": ["admin", "member", "guest"]}, {"type": "null"}]}),
    ] = None


@router.post("/conversations/{conv}/members", responses=problems(403, 404, 409))
async def add_member(conv: ConvId, body: AddMemberBody, caller: Caller, res: Res) -> Any:
    req = messages_api.AddMember(conv=_conv(conv), user_id=body.user_id, role=body.role)
    out = await res.rpc.request(ops.messages.CONV_ADD_MEMBER, req, user=caller.user_id)
    return wire(out.conversation)


@router.delete(
    "/conversations/{conv}/members/{user_id}",
    status_code=204,
    responses=problems(403, 404, 409, d409="the last owner must name a new owner first"),
)
async def remove_member(conv: ConvId, user_id: UserId, caller: Caller, res: Res) -> Response:
    req = messages_api.MemberRef(conv=_conv(conv), user_id=user_id)
    await res.rpc.request(ops.messages.CONV_REMOVE_MEMBER, req, user=caller.user_id)
    return Response(status_code=204)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["owner", "admin", "member", "guest"]


@router.put("/conversations/{conv}/members/{user_id}/role", responses=problems(403, 404, 409))
async def set_role(conv: ConvId, user_id: UserId, body: RoleBody, caller: Caller, res: Res) -> Any:
    req = messages_api.SetRole(conv=_conv(conv), user_id=user_id, role=body.role)
    out = await res.rpc.request(ops.messages.CONV_SET_ROLE, req, user=caller.user_id)
    return wire(out.conversation)


# --- messages ------------------------------------------------------------------------------
@router.get("/conversations/{conv}/messages", responses=problems(403, 404))
async def history(
    conv: ConvId,
    caller: Caller,
    res: Res,
    before: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX, description="clamped to 1..200")] = 50,
) -> Any:
    q = messages_api.HistoryQuery(conv=_conv(conv), before=before, after=after, limit=clamp(limit, 1, 200))
    page = await res.rpc.request_wire(ops.messages.HISTORY, q, user=caller.user_id)
    page["events"] = [res.signer.event(e, caller.user_id) for e in page.get("events", [])]
    # Rendered here: FastAPI's jsonable_encoder walks every value of a returned dict (~1 ms
    # for a page of 50; bench/history.py).
    return Response(orjson.dumps(page), media_type="application/json")


class SendBody(BaseModel):
    """A text (not blank once control characters are removed and it is trimmed; at most
    4000 characters then, else 413), attachments, or both."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"properties": {"body": {"pattern": NONBLANK_TEXT}}},
                {"required": ["attachments"], "properties": {"attachments": {"type": "array"}}},
            ]
        },
    )
    client_msg_id: ClientMsgId
    body: str
    attachments: AttachmentIds | None = None  # the sender's uploads; the body may then be empty
    reply_to: SeqRef | None = None


@router.post(
    "/conversations/{conv}/messages",
    status_code=201,
    responses={
        200: {
            "description": "Sent before with this client_msg_id: the stored message",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problems(403, 404, 413, d413="the text is longer than 4000 characters, or the request too large"),
    },
)
async def send(conv: ConvId, body: SendBody, caller: Caller, res: Res) -> Any:
    out = await res.sender.send(
        caller.user_id, _conv(conv), body.client_msg_id, body.body, body.attachments, body.reply_to
    )
    return JSONResponse(res.signer.event(out.event, caller.user_id), status_code=201 if out.created else 200)
