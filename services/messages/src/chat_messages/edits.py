"""Edits and deletes of messages (PROTOCOL §3): new events in the conversation's log.

- **Edit** (``PATCH …/messages/{seq}``): a new ``edit`` event with ``target`` and the new
  ``body`` (cleaned like a send's). Only the sender of a non-deleted ``message``; editing
  is posting (the ``post`` row of the permission table: not guests, not while archived).
  No such message, not a ``message``, or deleted → 404; another member's → 403.
- **Delete** (``DELETE …/messages/{seq}``): a new ``delete`` event with ``target``. The
  sender (any member; not while archived), or another member allowed ``delete_others``
  (admin+). The message stays in history as a ``message`` with ``body``/``attachments``
  null and ``deleted: true``; the edits of it lose their body too. Deleting a deleted
  message answers its existing ``delete`` event (retry-safe), no new event.

Each is ONE transaction: lock the conversation row, check, allocate a seq, insert the event,
update the target; the event is published after the commit.
"""

from __future__ import annotations

from typing import Any

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Event
from chat_proto.messages_api import EditMessage, MessageRef
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages import permissions as perm
from chat_messages.conversations import Conversations, role_of
from chat_messages.rules import clean_body


def no_message() -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, "no such message")


def visible_refusal(row: Row[Any], me: Row[Any] | None) -> ChatError | None:
    """Who may act on messages at all: members; a non-member of a private conversation gets
    404 (no leak), of a public channel 403."""
    if me is not None:
        return None
    if perm.kind_column(row.kind, bool(row.private)) != "public":
        return perm.hidden()
    return ChatError(ErrorCode.FORBIDDEN, "join the channel first")


def delete_refusal(row: Row[Any], me: Row[Any], own: bool) -> ChatError | None:
    """One's own message: any member, not while archived. Another's: ``delete_others``."""
    if not own:
        return perm.refusal("delete_others", row.kind, bool(row.private), role_of(me), bool(row.archived))
    return perm.archived_error() if row.archived else None


class Edits:
    def __init__(self, convs: Conversations, max_body_codepoints: int = 4000) -> None:
        self.convs = convs
        self.store = convs.store
        self.max_body = max_body_codepoints

    async def _target(self, conn: AsyncConnection, conv: str, seq: int) -> Event:
        ev = await self.store.get_event(conn, conv, seq)
        if ev is None or ev.kind != "message":
            raise no_message()
        return ev

    async def edit(self, actor: str, req: EditMessage) -> dict[str, Any]:
        body = clean_body(req.body, self.max_body)
        async with self.store.tx() as conn:
            row, me = await self.convs.load(conn, req.conv, actor, lock=True)
            perm.check("post", row.kind, bool(row.private), role_of(me), bool(row.archived))
            target = await self._target(conn, req.conv, req.seq)
            if target.deleted:
                raise no_message()
            if target.sender != actor:
                raise ChatError(ErrorCode.FORBIDDEN, "only the sender may edit a message")
            evs = await self.convs.append(
                conn, req.conv, [{"kind": "edit", "sender": actor, "target": req.seq, "body": body}]
            )
        await self.convs.announce(evs)
        return evs[0].to_wire()

    async def delete(self, actor: str, req: MessageRef) -> dict[str, Any]:
        async with self.store.tx() as conn:
            row, me = await self.convs.load(conn, req.conv, actor, lock=True)
            err = visible_refusal(row, me)
            if err is not None:
                raise err
            assert me is not None
            target = await self._target(conn, req.conv, req.seq)
            err = delete_refusal(row, me, own=target.sender == actor)
            if err is not None:
                raise err
            if target.deleted:
                existing = await self.store.find_delete(conn, req.conv, req.seq)
                if existing is not None:
                    return existing.to_wire()
            evs = await self.convs.append(conn, req.conv, [{"kind": "delete", "sender": actor, "target": req.seq}])
            await self.store.erase_message(conn, req.conv, req.seq)
        await self.convs.announce(evs)
        return evs[0].to_wire()
