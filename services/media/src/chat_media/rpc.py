"""RPC of the media service (``svc.media.*``)."""

from __future__ import annotations

from chat_bus.rpc import RpcContext, RpcServer
from chat_proto import ops
from chat_proto.media_api import Attachments, ResolveAttachments

from chat_media.service import MediaService


def register(server: RpcServer, service: MediaService) -> None:
    async def resolve(req: ResolveAttachments, ctx: RpcContext) -> Attachments:
        found = await service.resolve(ctx.require_user(), req.media_ids)
        return Attachments.model_validate({"attachments": found})

    server.route(ops.media.RESOLVE, resolve)
