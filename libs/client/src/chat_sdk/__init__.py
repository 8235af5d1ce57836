"""Python client SDK for the chat backend (PROTOCOL v1): REST ``/v1`` + WebSocket ``/ws``.

Quick start::

    from chat_sdk import ChatClient

    client = await ChatClient.connect("http://127.0.0.1:8080", username="ann", password="…")
    conv = await client.create_conversation("channel", name="general")
    res = await client.send(conv.id, "hello")  # SendResult(seq=…, ts=…)
    async for ev in client.events():
        print(ev.conv, ev.seq, ev.kind, ev.body)

See the package README for the guarantees (ordering, de-duplication, reconnects).
"""

from chat_sdk.client import ChatClient
from chat_sdk.errors import (
    ChatError,
    ClientClosed,
    Conflict,
    Forbidden,
    InternalError,
    Invalid,
    NotFound,
    RateLimited,
    SendTimeout,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from chat_sdk.link import ConnectionLost, Disconnect
from chat_sdk.models import (
    Attachment,
    Conversation,
    Delete,
    Edit,
    Event,
    HistoryPage,
    Item,
    Member,
    MemberJoined,
    MemberLeft,
    Message,
    Presence,
    Receipt,
    RoleChanged,
    SearchHit,
    SearchPage,
    SendResult,
    Tokens,
    Typing,
    Upload,
    User,
)
from chat_sdk.options import ClientOptions

__all__ = [
    "Attachment",
    "ChatClient",
    "ChatError",
    "ClientClosed",
    "ClientOptions",
    "Conflict",
    "ConnectionLost",
    "Conversation",
    "Delete",
    "Disconnect",
    "Edit",
    "Event",
    "Forbidden",
    "HistoryPage",
    "InternalError",
    "Invalid",
    "Item",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "NotFound",
    "Presence",
    "RateLimited",
    "Receipt",
    "RoleChanged",
    "SearchHit",
    "SearchPage",
    "SendResult",
    "SendTimeout",
    "Tokens",
    "TooLarge",
    "Typing",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "Upload",
    "User",
]
