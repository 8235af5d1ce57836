"""NATS request/reply transport: ``svc.auth.<op>`` -> AuthService."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat_bus.rpc import RpcContext, RpcServer
from chat_proto import auth_api as api
from chat_proto import ops
from chat_proto.subjects import AUTH_QUEUE
from nats.aio.client import Client as NATS

from chat_auth.accounts import AccountsService
from chat_auth.service import AuthService

OPS = ("register", "login", "refresh", "logout", "jwks", "get_user", "users_exist")
ACCOUNT_OPS = ("me", "users.search", "revocations", "admin.deactivate", "admin.reactivate", "admin.set_admin")


def register_handlers(server: RpcServer, service: AuthService) -> None:
    async def register(req: api.RegisterRequest, _ctx: RpcContext) -> dict[str, Any]:
        user = await service.register(req.username, req.password, req.display_name, req.bootstrap_token)
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

    server.route(ops.auth.REGISTER, register)
    server.route(ops.auth.LOGIN, login)
    server.route(ops.auth.REFRESH, refresh)
    server.route(ops.auth.LOGOUT, logout)
    server.route(ops.auth.JWKS, jwks)
    server.route(ops.auth.GET_USER, get_user)
    server.route(ops.auth.USERS_EXIST, users_exist)


def register_account_handlers(server: RpcServer, accounts: AccountsService) -> None:
    """The acting user is the ``Chat-User`` header the gateway set from a verified token."""

    async def me(_req: api.Empty, ctx: RpcContext) -> api.MeOut:
        return await accounts.me(ctx.require_user())

    async def search(req: api.SearchUsersRequest, ctx: RpcContext) -> dict[str, Any]:
        ctx.require_user()
        return await accounts.search(req.q, req.limit, req.cursor)

    async def revocations(_req: api.Empty, _ctx: RpcContext) -> dict[str, Any]:
        return await accounts.revocations()

    async def deactivate(req: api.AdminUserRequest, ctx: RpcContext) -> api.AccountOut:
        return await accounts.admin_deactivate(ctx.require_user(), req.user_id)

    async def reactivate(req: api.AdminUserRequest, ctx: RpcContext) -> api.AccountOut:
        return await accounts.admin_reactivate(ctx.require_user(), req.user_id)

    async def set_admin(req: api.SetAdminRequest, ctx: RpcContext) -> api.AccountOut:
        return await accounts.admin_set_admin(ctx.require_user(), req.user_id, req.admin)

    server.route(ops.auth.ME, me)
    server.route(ops.auth.USERS_SEARCH, search)
    server.route(ops.auth.REVOCATIONS, revocations)
    server.route(ops.auth.ADMIN_DEACTIVATE, deactivate)
    server.route(ops.auth.ADMIN_REACTIVATE, reactivate)
    server.route(ops.auth.ADMIN_SET_ADMIN, set_admin)


def make_rpc_server(
    nc: NATS,
    service: AuthService,
    on_request: Callable[[str, str, float], None] | None = None,
    accounts: AccountsService | None = None,
) -> RpcServer:
    server = RpcServer(nc, AUTH_QUEUE, on_request=on_request)
    register_handlers(server, service)
    if accounts is not None:
        register_account_handlers(server, accounts)
    return server
