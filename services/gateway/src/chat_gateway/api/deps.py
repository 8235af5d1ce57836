"""Dependencies of the REST routes: the shared resources and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.rpc import RpcClient
from fastapi import Depends, Request

from chat_gateway.limits import Limits, rest_kind
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


def resources(request: Request) -> Resources:
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


Caller = Annotated[Principal, Depends(principal)]
