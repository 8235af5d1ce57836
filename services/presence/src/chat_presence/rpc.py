"""RPC transport of the presence service: ``svc.presence.*`` in queue group ``svc-presence``
(any replica answers; every replica holds the same state)."""

from __future__ import annotations

from typing import Any

from chat_bus.rpc import RpcContext, RpcServer
from chat_proto import ops
from chat_proto.presence import PresenceQuery

from chat_presence.service import PresenceService


def register(server: RpcServer, service: PresenceService) -> None:
    async def query(req: PresenceQuery, ctx: RpcContext) -> dict[str, Any]:
        out = await service.query(ctx.require_user(), req.user_ids)
        return {"presence": [e.model_dump() for e in out["presence"]]}

    server.route(ops.presence.QUERY, query)
