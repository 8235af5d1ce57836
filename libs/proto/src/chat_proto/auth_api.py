"""RPC API of the auth service (subjects ``svc.auth.<op>``). Versioned with the protocol.

Ops and their request models; every reply's ``result`` is the JSON given.
- ``register``  RegisterRequest  -> {"user": UserOut}
- ``login``     LoginRequest     -> TokenPair
- ``refresh``   RefreshRequest   -> TokenPair
- ``logout``    RefreshRequest   -> {}
- ``jwks``      Empty            -> {"keys": [JWK, ...]}
- ``get_user``  UserIdRequest    -> UserOut                  (not_found when unknown)
- ``users_exist`` UserIdsRequest -> {"missing": [user_id, ...]}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

USERNAME_PATTERN = r"^[a-z0-9_.-]{3,32}$"
ACCESS_TOKEN_TYPE = "access"  # the "typ" claim; header "typ" is "at+jwt"
AUDIENCE = "chat"


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Empty(_Req):
    pass


class RegisterRequest(_Req):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=128)
    display_name: str | None = Field(default=None, max_length=64)


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
