"""RPC of the search service (``svc.search.*``)."""

from __future__ import annotations

from typing import Any

from chat_bus.rpc import RpcContext, RpcServer
from chat_proto import ops
from chat_proto.search_api import SearchQuery

from chat_search.service import SearchService


def register(server: RpcServer, service: SearchService) -> None:
    async def query(req: SearchQuery, ctx: RpcContext) -> dict[str, Any]:
        return await service.query(ctx.require_user(), req)

    server.route(ops.search.QUERY, query)
