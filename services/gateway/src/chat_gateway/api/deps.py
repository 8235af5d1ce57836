"""Dependencies of the REST routes: the shared resources and the authenticated caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from chat_bus.rpc import RpcClient
from chat_proto.errors import ChatError, ErrorCode
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chat_gateway.client_address import Network, client_address
from chat_gateway.limits import (
    LOGIN,
    LOGIN_GLOBAL,
    REFRESH,
    REFRESH_GLOBAL,
    REGISTER,
    REGISTER_GLOBAL,
    Limits,
    charge_address,
    rest_kind,
)
from chat_gateway.media_client import MediaClient
from chat_gateway.media_urls import UrlSigner
from chat_gateway.openapi import BEARER
from chat_gateway.sends import Sender
from chat_gateway.settings import GatewaySettings
from chat_gateway.tokens import Principal, TokenVerifier


@dataclass
class Resources:
    settings: GatewaySettings
    rpc: RpcClient
    verifier: TokenVerifier
    sender: Sender
    limits: Limits
    signer: UrlSigner
    trusted_proxies: list[Network] = field(default_factory=list)
    media: MediaClient | None = None  # None: GATEWAY_MEDIA_URL unset


async def resources(request: Request) -> Resources:
    # async (as every dependency here): FastAPI runs a plain ``def`` dependency in its thread
    # pool, a thread hop per request (~0.3 ms of the gateway's CPU on a page of history).
    res: Resources | None = getattr(request.app.state, "resources", None)
    if res is None:
        raise ChatError(ErrorCode.UNAVAILABLE, "starting")
    return res


Res = Annotated[Resources, Depends(resources)]


async def principal(request: Request, res: Res) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ChatError(ErrorCode.UNAUTHORIZED, "missing bearer token")
    p = await res.verifier.verify(token.strip())
    # Writes are rate limited per user (limits.py): 429 rate_limited with Retry-After.
    kind = rest_kind(request.method, request.url.path)
    if kind is not None:
        res.limits.enforce(p.user_id, kind)
    return p


# Declares the bearer security of the routes that take a Caller (in /openapi.json); the
# header is read by ``principal`` itself (auto_error off: this never refuses anything).
_bearer = HTTPBearer(
    scheme_name=BEARER,
    bearerFormat="JWT",
    description="The access token of POST /v1/auth/login or /v1/auth/refresh.",
    auto_error=False,
)


async def caller(
    request: Request, res: Res, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Principal:
    return await principal(request, res)


Caller = Annotated[Principal, Depends(caller)]


async def peer_address(request: Request, res: Res) -> str:
    """The client's address (client_address.py: behind trusted proxies, the forwarded one)."""
    return client_address(request.client.host if request.client else None, request.headers, res.trusted_proxies)


ClientAddress = Annotated[str, Depends(peer_address)]


def _budget(kind: str, global_kind: str) -> Callable[[Res, ClientAddress], Awaitable[str]]:
    async def charge(res: Res, address: ClientAddress) -> str:
        charge_address(res.limits, kind, global_kind, address)
        return address

    return charge


# /v1/auth budgets (limits.py): per client address and for all clients of this gateway.
LoginBudget = Annotated[str, Depends(_budget(LOGIN, LOGIN_GLOBAL))]
RegisterBudget = Annotated[str, Depends(_budget(REGISTER, REGISTER_GLOBAL))]
RefreshBudget = Annotated[str, Depends(_budget(REFRESH, REFRESH_GLOBAL))]
