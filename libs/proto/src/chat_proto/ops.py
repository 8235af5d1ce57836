"""The RPC catalogue: every operation between the services, declared once.

An ``Op`` is a subject with its request model and reply model (and the error codes it may
answer with, for documentation). Servers ``route(op, handler)``; callers
``request(op, req) -> reply`` (``chat_bus.rpc``). Adding an operation: declare it here,
route it in the owning service, call it where needed.

    # here
    PING = Op("svc.messages.ping", api.Empty, replies.Done)
    # the service (rpc.py)
    server.route(ops.messages.PING, ping)          # async def ping(req, ctx) -> replies.Done
    # a caller
    done = await client.request(ops.messages.PING, api.Empty())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from chat_proto import auth_api, media_api, messages_api, replies, search_api
from chat_proto import presence as presence_api
from chat_proto.errors import ErrorCode
from chat_proto.subjects import auth_rpc, media_rpc, messages_rpc, presence_rpc, search_rpc

# Covariant: an Op is read-only (a frozen dataclass), and an Op[X, Y] may stand for an
# Op[X, BaseModel] where a caller only needs some model.
ReqT = TypeVar("ReqT", bound=BaseModel, covariant=True)
RespT = TypeVar("RespT", bound=BaseModel, covariant=True)
# For functions that take an Op and give back its reply type.
Req = TypeVar("Req", bound=BaseModel)
Resp = TypeVar("Resp", bound=BaseModel)

E = ErrorCode


@dataclass(frozen=True)
class Op(Generic[ReqT, RespT]):
    subject: str
    request: type[ReqT]
    reply: type[RespT]
    errors: tuple[ErrorCode, ...] = ()

    def read(self, data: Any) -> RespT:
        """The reply, from what the server answered."""
        return self.reply.model_validate(data)


def wire(reply: BaseModel) -> dict[str, Any]:
    """A reply as the owning service sent it (to pass it on to a client unchanged)."""
    return reply.model_dump(mode="json", exclude_unset=True)


def _auth(op: str, req: type[Req], rep: type[Resp], *errors: ErrorCode) -> Op[Req, Resp]:
    return Op(auth_rpc(op), req, rep, errors)


def _messages(op: str, req: type[Req], rep: type[Resp], *errors: ErrorCode) -> Op[Req, Resp]:
    return Op(messages_rpc(op), req, rep, errors)


a, m, r = auth_api, messages_api, replies


class auth:
    """svc.auth.*"""

    REGISTER = _auth("register", a.RegisterRequest, r.Registered, E.CONFLICT, E.FORBIDDEN, E.INVALID, E.UNAVAILABLE)
    LOGIN = _auth("login", a.LoginRequest, a.TokenPair, E.UNAUTHORIZED, E.RATE_LIMITED, E.UNAVAILABLE)
    REFRESH = _auth("refresh", a.RefreshRequest, a.TokenPair, E.UNAUTHORIZED)
    LOGOUT = _auth("logout", a.RefreshRequest, r.Done)
    JWKS = _auth("jwks", a.Empty, r.Jwks)
    GET_USER = _auth("get_user", a.UserIdRequest, a.UserOut, E.NOT_FOUND)
    USERS_EXIST = _auth("users_exist", a.UserIdsRequest, r.Missing)
    ME = _auth("me", a.Empty, a.MeOut, E.NOT_FOUND)
    USERS_SEARCH = _auth("users.search", a.SearchUsersRequest, r.UserPage, E.INVALID)
    REVOCATIONS = _auth("revocations", a.Empty, r.Revocations)
    ADMIN_DEACTIVATE = _auth("admin.deactivate", a.AdminUserRequest, a.AccountOut, E.FORBIDDEN, E.NOT_FOUND, E.CONFLICT)
    ADMIN_REACTIVATE = _auth("admin.reactivate", a.AdminUserRequest, a.AccountOut, E.FORBIDDEN, E.NOT_FOUND)
    ADMIN_SET_ADMIN = _auth("admin.set_admin", a.SetAdminRequest, a.AccountOut, E.FORBIDDEN, E.NOT_FOUND, E.CONFLICT)


_CONV_ERRORS = (E.NOT_FOUND, E.FORBIDDEN, E.INVALID, E.CONFLICT)


class messages:
    """svc.messages.*"""

    CONV_CREATE = _messages("conv.create", m.CreateConversation, r.Created, *_CONV_ERRORS)
    CONV_LIST = _messages("conv.list", m.Empty, r.Conversations)
    CONV_GET = _messages("conv.get", m.ConvRef, r.Conversation, E.NOT_FOUND, E.FORBIDDEN)
    CONV_JOIN = _messages("conv.join", m.ConvRef, r.Changed, *_CONV_ERRORS)
    CONV_ADD_MEMBER = _messages("conv.add_member", m.AddMember, r.Changed, *_CONV_ERRORS)
    CONV_REMOVE_MEMBER = _messages("conv.remove_member", m.MemberRef, r.Done, *_CONV_ERRORS)
    CONV_SET_ROLE = _messages("conv.set_role", m.SetRole, r.ConversationReply, *_CONV_ERRORS)
    CONV_UPDATE = _messages("conv.update", m.UpdateConversation, r.Changed, *_CONV_ERRORS)
    CONV_ARCHIVE = _messages("conv.archive", m.SetArchived, r.Changed, *_CONV_ERRORS)
    CONV_HIDE = _messages("conv.hide", m.ConvRef, r.Done, E.NOT_FOUND)
    CHANNELS_LIST = _messages("channels.list", m.ChannelQuery, r.ChannelPage, E.INVALID)
    HISTORY = _messages("history", m.HistoryQuery, r.History, E.NOT_FOUND, E.FORBIDDEN)
    SYNC = _messages("sync", m.SyncQuery, r.SyncReply, E.INVALID)
    LOOKUP_SEND = _messages("lookup_send", m.LookupSend, r.WireEvent, E.NOT_FOUND)
    USER_CONVS = _messages("internal.user_convs", m.UserRef, r.UserConvs)
    SHARED_WITH = _messages("internal.shared_with", m.SharedWith, r.UserIds)
    PRESENCE_CONVS = _messages("internal.presence_convs", m.PresenceConvs, r.PresenceConvsReply)
    EVENTS = _messages("internal.events", m.EventsRange, r.Events)
    ALL_CONVS = _messages("internal.all_convs", m.ConvScan, r.ConvPositions)
    READABLE = _messages("internal.readable", m.Readable, r.ConvIds)
    RECEIPTS_APPLY = _messages("internal.receipts", m.ReceiptBatch, r.ChangedCount)
    RECEIPTS_LIST = _messages("receipts.list", m.ConvRef, r.Receipts, E.NOT_FOUND, E.FORBIDDEN)
    RECEIPTS_SET = _messages("receipts.set", m.SetReceipt, r.ChangedFlag, E.NOT_FOUND, E.FORBIDDEN, E.INVALID)
    MSG_EDIT = _messages("msg.edit", m.EditMessage, r.WireEvent, E.NOT_FOUND, E.FORBIDDEN, E.INVALID, E.TOO_LARGE)
    MSG_DELETE = _messages("msg.delete", m.MessageRef, r.WireEvent, E.NOT_FOUND, E.FORBIDDEN)
    BLOCKS_ADD = _messages("blocks.add", m.BlockRef, r.Done, E.INVALID, E.NOT_FOUND)
    BLOCKS_REMOVE = _messages("blocks.remove", m.BlockRef, r.Done)
    BLOCKS_LIST = _messages("blocks.list", m.Empty, r.Blocks)
    SETTINGS_GET = _messages("settings.get", m.Empty, r.PrivacySettingsReply)
    SETTINGS_SET = _messages("settings.set", m.PrivacySettings, r.PrivacySettingsReply)


class presence:
    """svc.presence.*"""

    QUERY = Op(presence_rpc("query"), presence_api.PresenceQuery, replies.PresenceReply)


class media:
    """svc.media.*"""

    RESOLVE = Op(media_rpc("resolve"), media_api.ResolveAttachments, media_api.Attachments, (E.NOT_FOUND, E.INVALID))


class search:
    """svc.search.*"""

    QUERY = Op(search_rpc("query"), search_api.SearchQuery, search_api.SearchPage, (E.INVALID, E.UNAVAILABLE))


ALL: list[Op[Any, Any]] = [
    op for ns in (auth, messages, presence, media, search) for op in vars(ns).values() if isinstance(op, Op)
]
