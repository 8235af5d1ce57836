"""Conversation settings and the channel directory: rename (name, topic, description),
archive/unarchive, and the list of public channels.

A change is a ``conversation_updated`` event in the conversation's log (its own seq, live
and in history) carrying ``changes`` — only the fields that changed, with their new values.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Event
from chat_proto.messages_api import ChannelQuery, SetArchived, UpdateConversation
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages import permissions as perm
from chat_messages.conversations import Conversations, conv_view, role_of
from chat_messages.rules import MAX_DESCRIPTION, MAX_TOPIC, clean_name, clean_text, like_pattern, name_key


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ChatError(ErrorCode.INVALID, "bad cursor") from exc


def requested_changes(kind: str, req: UpdateConversation) -> dict[str, str]:
    """The cleaned new values asked for. A name only for channels (dm/group: 422)."""
    out: dict[str, str] = {}
    if req.name is not None:
        if kind != "channel":
            raise ChatError(ErrorCode.INVALID, f"a {kind} has no name")
        out["name"] = clean_name(req.name)
    if req.topic is not None:
        out["topic"] = clean_text(req.topic, "topic", MAX_TOPIC)
    if req.description is not None:
        out["description"] = clean_text(req.description, "description", MAX_DESCRIPTION)
    if not out:
        raise ChatError(ErrorCode.INVALID, "nothing to change: give name, topic or description")
    return out


class Channels:
    def __init__(self, convs: Conversations) -> None:
        self.convs = convs
        self.store = convs.store

    async def update(self, actor: str, req: UpdateConversation) -> dict[str, Any]:
        """PATCH name/topic/description (``rename`` in the table). Unchanged values: no event."""
        try:
            async with self.store.tx() as conn:
                row, me = await self.convs.load(conn, req.conv, actor, lock=True)
                perm.check("rename", row.kind, bool(row.private), role_of(me), bool(row.archived))
                wanted = requested_changes(row.kind, req)
                changes = {f: v for f, v in wanted.items() if v != (getattr(row, f) or "")}
                values: dict[str, Any] = dict(changes)
                if "name" in changes:
                    values["name_key"] = name_key(changes["name"])
                evs = await self._change(conn, req.conv, actor, values, changes)
                view = await self.convs.view(conn, req.conv, actor)
        except IntegrityError as exc:  # the unique name_key index, also under a race
            raise ChatError(ErrorCode.CONFLICT, "a channel with this name exists") from exc
        await self.convs.announce(evs)
        return {"conversation": view, "changed": bool(evs)}

    async def set_archived(self, actor: str, req: SetArchived) -> dict[str, Any]:
        """Archive or unarchive (``archive`` in the table; not a dm). Same state: no event."""
        async with self.store.tx() as conn:
            row, me = await self.convs.load(conn, req.conv, actor, lock=True)
            perm.check("archive", row.kind, bool(row.private), role_of(me), bool(row.archived))
            changes: dict[str, Any] = {"archived": req.archived} if bool(row.archived) != req.archived else {}
            evs = await self._change(conn, req.conv, actor, changes, changes)
            view = await self.convs.view(conn, req.conv, actor)
        await self.convs.announce(evs)
        return {"conversation": view, "changed": bool(evs)}

    async def _change(
        self, conn: AsyncConnection, conv: str, actor: str, values: dict[str, Any], changes: dict[str, Any]
    ) -> list[Event]:
        if not changes:
            return []
        await self.store.update_conversation(conn, conv, values)
        return await self.convs.append(
            conn, conv, [{"kind": "conversation_updated", "sender": actor, "changes": changes}]
        )

    async def directory(self, user: str, q: ChannelQuery) -> dict[str, Any]:
        """Public channels only (private ones are never listed), by name_key, keyset-paged."""
        pattern = like_pattern(q.q) if q.q and name_key(q.q) else None
        after = decode_cursor(q.cursor) if q.cursor else None
        async with self.store.tx() as conn:
            rows = await self.store.public_channels(conn, user, pattern, after, q.limit + 1)
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        out = []
        for r in rows:
            view = conv_view(r, r.role, r.delivered_seq or 0, r.read_seq or 0)
            view["member_count"] = int(r.member_count)
            out.append(view)
        next_cursor = encode_cursor(rows[-1].name_key) if more and rows else None
        return {"channels": out, "next_cursor": next_cursor}
