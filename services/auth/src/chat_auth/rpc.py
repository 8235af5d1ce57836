"""NATS request/reply transport: ``svc.auth.<op>`` -> AuthService."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat_proto import auth_api as api
from chat_proto.rpc import RpcContext, RpcServer
from chat_proto.subjects import AUTH_QUEUE, auth_rpc
from nats.aio.client import Client as NATS

from chat_auth.service import AuthService

OPS = ("register", "login", "refresh", "logout", "jwks", "get_user", "users_exist")


def register_handlers(server: RpcServer, service: AuthService) -> None:
    async def register(req: api.RegisterRequest, _ctx: RpcContext) -> dict[str, Any]:
        user = await service.register(req.username, req.password, req.display_name)
        return {"user": user.model_dump(mode="json")}

    async def login(req: api.LoginRequest, _ctx: RpcContext) -> api.TokenPair:
        return await service.login(req.username, req.password, req.client_ip)

    async def refresh(req: api.RefreshRequest, _ctx: RpcContext) -> api.TokenPair:
        return await service.refresh(req.refresh_token)

    async def logout(req: api.RefreshRequest, _ctx: RpcContext) -> dict[str, Any]:
        return await service.logout(req.refresh_token)

    async def jwks(_req: api.Empty, _ctx: RpcContext) -> dict[str, Any]:
        return service.jwks()

    async def get_user(req: api.UserIdRequest, _ctx: RpcContext) -> api.UserOut:
        return await service.get_user(req.user_id)

    async def users_exist(req: api.UserIdsRequest, _ctx: RpcContext) -> dict[str, list[str]]:
        return await service.users_exist(req.user_ids)

    server.add(auth_rpc("register"), api.RegisterRequest, register)
    server.add(auth_rpc("login"), api.LoginRequest, login)
    server.add(auth_rpc("refresh"), api.RefreshRequest, refresh)
    server.add(auth_rpc("logout"), api.RefreshRequest, logout)
    server.add(auth_rpc("jwks"), api.Empty, jwks)
    server.add(auth_rpc("get_user"), api.UserIdRequest, get_user)
    server.add(auth_rpc("users_exist"), api.UserIdsRequest, users_exist)


def make_rpc_server(
    nc: NATS,
    service: AuthService,
    on_request: Callable[[str, str, float], None] | None = None,
) -> RpcServer:
    server = RpcServer(nc, AUTH_QUEUE, on_request=on_request)
    register_handlers(server, service)
    return server
