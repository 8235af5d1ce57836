"""Consent and privacy (hardening §5): blocks, who may add you to groups, hiding a
conversation. The checks run in the service that owns conversations, in the same
transaction as the change they guard.

- **Blocks** are one-way: when A blocks B, B cannot open a dm with A (403, even when the dm
  exists), add A to any conversation (403) or send into a dm with A (``forbidden``), and
  does not see A's presence (sharing.py). A still may do all of that towards B.
- **Group invites**: ``everyone`` (default) or ``shared`` — only people who already share a
  conversation with you may put you into a group (creating it or adding you; 403).
- **Hiding** a conversation takes it off the member's ``GET /v1/conversations`` until its
  next event (a dm cannot be left, but it can be hidden).
"""

from __future__ import annotations

from typing import Any

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.timefmt import now_ts
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages import privacy_store, sharing_store
from chat_messages.ports import UserDirectory
from chat_messages.store import Store

GROUP_INVITES = ("everyone", "shared")
NOT_ACCEPTED = "this user does not accept it"


async def check_may_add(conn: AsyncConnection, actor: str, targets: list[str], kind: str) -> None:
    """Refuse (403) putting ``targets`` into a conversation of ``kind`` when one of them
    blocked ``actor``, or (groups) only takes invites from people they share one with."""
    others = [t for t in targets if t != actor]
    if not others:
        return
    if await privacy_store.blocked_pairs(conn, ((t, actor) for t in others)):
        raise ChatError(ErrorCode.FORBIDDEN, NOT_ACCEPTED)
    if kind != "group":
        return
    picky = [u for u, v in (await privacy_store.group_invites(conn, others)).items() if v == "shared"]
    if picky and set(picky) - await sharing_store.shared_with(conn, actor, picky):
        raise ChatError(ErrorCode.FORBIDDEN, NOT_ACCEPTED)


class Privacy:
    def __init__(self, store: Store, users: UserDirectory) -> None:
        self.store, self.users = store, users

    async def block(self, user: str, target: str) -> dict[str, Any]:
        if target == user:
            raise ChatError(ErrorCode.INVALID, "you cannot block yourself")
        if await self.users.missing([target]):
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        async with self.store.tx() as conn:
            await privacy_store.add_block(conn, user, target, now_ts())
        return {}

    async def unblock(self, user: str, target: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            await privacy_store.remove_block(conn, user, target)
        return {}

    async def blocks(self, user: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            rows = await privacy_store.blocks_of(conn, user)
        return {"blocks": [{"user_id": r.blocked_id, "created_at": r.created_at} for r in rows]}

    async def settings(self, user: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            got = await privacy_store.group_invites(conn, [user])
        return {"group_invites": got.get(user, "everyone")}

    async def set_settings(self, user: str, group_invites: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            await privacy_store.set_group_invites(conn, user, group_invites)
        return {"group_invites": group_invites}

    async def hide(self, user: str, conv: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            row = await self.store.get_conversation(conn, conv)
            if row is None or await self.store.get_member(conn, conv, user) is None:
                raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
            await privacy_store.hide(conn, conv, user, int(row.last_seq))
        return {}
