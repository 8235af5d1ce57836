"""RPC API of the auth service (subjects ``svc.auth.<op>``). Versioned with the protocol.

Ops and their request models; every reply's ``result`` is the JSON given.
- ``register``  RegisterRequest  -> {"user": UserOut}
- ``login``     LoginRequest     -> TokenPair
- ``refresh``   RefreshRequest   -> TokenPair
- ``logout``    RefreshRequest   -> {}
- ``jwks``      Empty            -> {"keys": [JWK, ...]}
- ``get_user``  UserIdRequest    -> UserOut                  (not_found when unknown)
- ``users_exist`` UserIdsRequest -> {"missing": [user_id, ...]}
- ``me``        Empty            -> MeOut                    (the ``Chat-User``)
- ``users.search`` SearchUsersRequest -> {"users": [UserOut], "next_cursor": str | null}
- ``admin.deactivate`` / ``admin.reactivate`` AdminUserRequest -> AccountOut
- ``admin.set_admin`` SetAdminRequest -> AccountOut
  (admin ops: the ``Chat-User`` must be an active admin, else ``forbidden``)
- ``revocations`` Empty -> {"revocations": [UserRevoked, ...]} (revoked within
  ``MAX_ACCESS_TTL_S + REVOCATION_MARGIN_S``)

Published by auth: ``UserRevoked`` on ``subjects.user_revoked(user_id)`` (core NATS).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

USERNAME_PATTERN = r"^[a-z0-9_.-]{3,32}$"
ACCESS_TOKEN_TYPE = "access"  # the "typ" claim; header "typ" is "at+jwt"
AUDIENCE = "chat"
# Longest access-token lifetime any auth configuration may issue (PROTOCOL: <= 15 min).
MAX_ACCESS_TTL_S = 900
# Clock skew allowance on top of it: how long a revocation stays relevant after it happened.
REVOCATION_MARGIN_S = 60
DIRECTORY_MAX_LIMIT = 50
DIRECTORY_DEFAULT_LIMIT = 20


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Empty(_Req):
    pass


class RegisterRequest(_Req):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=128)
    display_name: str | None = Field(default=None, max_length=64)
    # The one-time AUTH_BOOTSTRAP_ADMIN_TOKEN: this registration becomes the first admin.
    bootstrap_token: str | None = Field(default=None, min_length=1, max_length=256)


class LoginRequest(_Req):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    # Client address as seen by the gateway, for logs and per-address throttling.
    client_ip: str | None = Field(default=None, max_length=64)


class RefreshRequest(_Req):
    refresh_token: str = Field(min_length=1, max_length=512)


class UserIdRequest(_Req):
    user_id: str = Field(max_length=64)


class UserIdsRequest(_Req):
    user_ids: list[str] = Field(max_length=1000)


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserOut


class MeOut(UserOut):
    admin: bool


class AccountOut(UserOut):
    """A user as the admin routes show it."""

    admin: bool
    deactivated: bool
    deactivated_at: str | None = None


class AdminUserRequest(_Req):
    user_id: str = Field(max_length=64)


class SetAdminRequest(AdminUserRequest):
    admin: bool


class SearchUsersRequest(_Req):
    q: str = Field(min_length=1, max_length=32)
    limit: int = Field(default=DIRECTORY_DEFAULT_LIMIT, ge=1, le=DIRECTORY_MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=64)


class UserRevoked(BaseModel):
    """Bus payload on ``chat.user.revoked.<user_id>``: refuse every access token of
    ``user_id`` issued at or before ``revoked_at`` and close the user's connections."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    user_id: str = Field(max_length=64)
    revoked_at: str  # RFC 3339 UTC, milliseconds
    reason: str = Field(default="deactivated", max_length=64)
