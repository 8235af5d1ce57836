"""REST ``/v1/users`` (directory) and ``/v1/admin/users/...`` (account state).

Validated here, decided by the auth service (it owns users and checks that the
``Chat-User`` — the verified caller, never a client-supplied id — is an admin).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from chat_proto import auth_api, ops
from chat_proto.bounds import INT64_MAX, INT64_MIN, clamp
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.ops import wire
from chat_proto.subjects import ID_PATTERN
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, StrictBool

from chat_gateway.api.deps import Caller, Res
from chat_gateway.openapi import problems

router = APIRouter(prefix="/v1")

UserId = Annotated[str, Path(max_length=64)]
_ID = re.compile(ID_PATTERN)


def _user(user_id: str) -> str:
    if not _ID.match(user_id):
        raise ChatError(ErrorCode.NOT_FOUND, "no such user")
    return user_id


@router.get("/users")
async def directory(
    caller: Caller,
    res: Res,
    q: Annotated[str, Query(min_length=1, max_length=32)],
    limit: Annotated[
        int, Query(ge=INT64_MIN, le=INT64_MAX, description=f"clamped to 1..{auth_api.DIRECTORY_MAX_LIMIT}")
    ] = auth_api.DIRECTORY_DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    """Active users whose username starts with ``q`` (case-insensitive), by username."""
    prefix = q.lower()
    if not 1 <= len(prefix) <= 32:
        raise ChatError(ErrorCode.INVALID, "q: 1..32 characters")
    req = auth_api.SearchUsersRequest(q=prefix, limit=clamp(limit, 1, auth_api.DIRECTORY_MAX_LIMIT), cursor=cursor)
    return wire(await res.rpc.request(ops.auth.USERS_SEARCH, req, user=caller.user_id))


@router.get("/users/{user_id}", responses={200: {"model": auth_api.UserOut}, **problems(404)})
async def user_by_id(user_id: UserId, caller: Caller, res: Res) -> Any:
    """One user's public profile (``id``, ``username``, ``display_name``): how clients name
    the members and senders they know by id."""
    req = auth_api.UserIdRequest(user_id=_user(user_id))
    return wire(await res.rpc.request(ops.auth.GET_USER, req, user=caller.user_id))


ADMIN_ONLY = "the caller is not an admin"
ADMIN_ANSWER: dict[int | str, dict[str, Any]] = {200: {"model": auth_api.AccountOut}}


@router.post(
    "/admin/users/{user_id}/deactivate",
    responses={**ADMIN_ANSWER, **problems(403, 404, 409, d403=ADMIN_ONLY, d409="the caller or the last admin")},
)
async def deactivate(user_id: UserId, caller: Caller, res: Res) -> Any:
    req = auth_api.AdminUserRequest(user_id=_user(user_id))
    return wire(await res.rpc.request(ops.auth.ADMIN_DEACTIVATE, req, user=caller.user_id))


@router.post("/admin/users/{user_id}/reactivate", responses={**ADMIN_ANSWER, **problems(403, 404, d403=ADMIN_ONLY)})
async def reactivate(user_id: UserId, caller: Caller, res: Res) -> Any:
    req = auth_api.AdminUserRequest(user_id=_user(user_id))
    return wire(await res.rpc.request(ops.auth.ADMIN_REACTIVATE, req, user=caller.user_id))


class AdminFlagBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    admin: StrictBool


@router.put(
    "/admin/users/{user_id}/admin",
    responses={**ADMIN_ANSWER, **problems(403, 404, 409, d403=ADMIN_ONLY, d409="the last active admin")},
)
async def set_admin(user_id: UserId, body: AdminFlagBody, caller: Caller, res: Res) -> Any:
    req = auth_api.SetAdminRequest(user_id=_user(user_id), admin=body.admin)
    return wire(await res.rpc.request(ops.auth.ADMIN_SET_ADMIN, req, user=caller.user_id))
