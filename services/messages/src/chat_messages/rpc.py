"""RPC transport of the messages service: parse, delegate to the rules, answer."""

from __future__ import annotations

from typing import Any

from chat_bus.rpc import RpcContext, RpcServer
from chat_proto import messages_api as api
from chat_proto import ops

from chat_messages.channels import Channels
from chat_messages.conversations import Conversations
from chat_messages.edits import Edits
from chat_messages.privacy import Privacy
from chat_messages.receipts import Receipts
from chat_messages.sharing import Sharing


def register(server: RpcServer, convs: Conversations, channels: Channels) -> None:
    async def create(req: api.CreateConversation, ctx: RpcContext) -> dict[str, Any]:
        return await convs.create(ctx.require_user(), req)

    async def list_(req: api.Empty, ctx: RpcContext) -> dict[str, Any]:
        return await convs.list_for(ctx.require_user())

    async def get(req: api.ConvRef, ctx: RpcContext) -> dict[str, Any]:
        return await convs.get(ctx.require_user(), req.conv)

    async def join(req: api.ConvRef, ctx: RpcContext) -> dict[str, Any]:
        return await convs.join(ctx.require_user(), req.conv)

    async def add_member(req: api.AddMember, ctx: RpcContext) -> dict[str, Any]:
        return await convs.add_member(ctx.require_user(), req)

    async def remove_member(req: api.MemberRef, ctx: RpcContext) -> dict[str, Any]:
        return await convs.remove_member(ctx.require_user(), req)

    async def set_role(req: api.SetRole, ctx: RpcContext) -> dict[str, Any]:
        return await convs.set_role(ctx.require_user(), req)

    async def update(req: api.UpdateConversation, ctx: RpcContext) -> dict[str, Any]:
        return await channels.update(ctx.require_user(), req)

    async def archive(req: api.SetArchived, ctx: RpcContext) -> dict[str, Any]:
        return await channels.set_archived(ctx.require_user(), req)

    async def directory(req: api.ChannelQuery, ctx: RpcContext) -> dict[str, Any]:
        return await channels.directory(ctx.require_user(), req)

    async def history(req: api.HistoryQuery, ctx: RpcContext) -> dict[str, Any]:
        return await convs.history(ctx.require_user(), req)

    async def sync(req: api.SyncQuery, ctx: RpcContext) -> dict[str, Any]:
        return await convs.sync(ctx.require_user(), req)

    async def lookup_send(req: api.LookupSend, ctx: RpcContext) -> dict[str, Any]:
        return await convs.lookup_send(ctx.require_user(), req.conv, req.client_msg_id)

    async def user_convs(req: api.UserRef, ctx: RpcContext) -> dict[str, Any]:
        return await convs.user_convs(req.user_id)

    async def events(req: api.EventsRange, ctx: RpcContext) -> dict[str, Any]:
        return await convs.events_range(req)

    async def all_convs(req: api.ConvScan, ctx: RpcContext) -> dict[str, Any]:
        return await convs.all_convs(req)

    server.route(ops.messages.CONV_CREATE, create)
    server.route(ops.messages.CONV_LIST, list_)
    server.route(ops.messages.CONV_GET, get)
    server.route(ops.messages.CONV_JOIN, join)
    server.route(ops.messages.CONV_ADD_MEMBER, add_member)
    server.route(ops.messages.CONV_REMOVE_MEMBER, remove_member)
    server.route(ops.messages.CONV_SET_ROLE, set_role)
    server.route(ops.messages.CONV_UPDATE, update)
    server.route(ops.messages.CONV_ARCHIVE, archive)
    server.route(ops.messages.CHANNELS_LIST, directory)
    server.route(ops.messages.HISTORY, history)
    server.route(ops.messages.SYNC, sync)
    server.route(ops.messages.LOOKUP_SEND, lookup_send)
    server.route(ops.messages.USER_CONVS, user_convs)
    server.route(ops.messages.EVENTS, events)
    server.route(ops.messages.ALL_CONVS, all_convs)


def register_privacy(server: RpcServer, privacy: Privacy) -> None:
    async def block(req: api.BlockRef, ctx: RpcContext) -> dict[str, Any]:
        return await privacy.block(ctx.require_user(), req.user_id)

    async def unblock(req: api.BlockRef, ctx: RpcContext) -> dict[str, Any]:
        return await privacy.unblock(ctx.require_user(), req.user_id)

    async def blocks(req: api.Empty, ctx: RpcContext) -> dict[str, Any]:
        return await privacy.blocks(ctx.require_user())

    async def get_settings(req: api.Empty, ctx: RpcContext) -> dict[str, Any]:
        return await privacy.settings(ctx.require_user())

    async def set_settings(req: api.PrivacySettings, ctx: RpcContext) -> dict[str, Any]:
        return await privacy.set_settings(ctx.require_user(), req.group_invites)

    async def hide(req: api.ConvRef, ctx: RpcContext) -> dict[str, Any]:
        return await privacy.hide(ctx.require_user(), req.conv)

    server.route(ops.messages.BLOCKS_ADD, block)
    server.route(ops.messages.BLOCKS_REMOVE, unblock)
    server.route(ops.messages.BLOCKS_LIST, blocks)
    server.route(ops.messages.SETTINGS_GET, get_settings)
    server.route(ops.messages.SETTINGS_SET, set_settings)
    server.route(ops.messages.CONV_HIDE, hide)


def register_sharing(server: RpcServer, sharing: Sharing) -> None:
    """internal: for the presence service (it passes the acting user in the request)."""

    async def shared_with(req: api.SharedWith, ctx: RpcContext) -> dict[str, Any]:
        return await sharing.shared_with(req)

    async def presence_convs(req: api.PresenceConvs, ctx: RpcContext) -> dict[str, Any]:
        return await sharing.presence_convs(req)

    async def readable(req: api.Readable, ctx: RpcContext) -> dict[str, Any]:
        return await sharing.readable(req)

    server.route(ops.messages.SHARED_WITH, shared_with)
    server.route(ops.messages.READABLE, readable)
    server.route(ops.messages.PRESENCE_CONVS, presence_convs)


def register_receipts_and_edits(server: RpcServer, receipts: Receipts, edits: Edits) -> None:
    async def apply_receipts(req: api.ReceiptBatch, ctx: RpcContext) -> dict[str, Any]:
        # internal: the gateway vouches for each update's user (its authenticated sockets)
        return {"changed": len(await receipts.apply(req.updates))}

    async def list_receipts(req: api.ConvRef, ctx: RpcContext) -> dict[str, Any]:
        return await receipts.list_for(ctx.require_user(), req.conv)

    async def set_receipt(req: api.SetReceipt, ctx: RpcContext) -> dict[str, Any]:
        return await receipts.set_own(ctx.require_user(), req)

    async def edit(req: api.EditMessage, ctx: RpcContext) -> dict[str, Any]:
        return await edits.edit(ctx.require_user(), req)

    async def delete(req: api.MessageRef, ctx: RpcContext) -> dict[str, Any]:
        return await edits.delete(ctx.require_user(), req)

    server.route(ops.messages.RECEIPTS_APPLY, apply_receipts)
    server.route(ops.messages.RECEIPTS_LIST, list_receipts)
    server.route(ops.messages.RECEIPTS_SET, set_receipt)
    server.route(ops.messages.MSG_EDIT, edit)
    server.route(ops.messages.MSG_DELETE, delete)
