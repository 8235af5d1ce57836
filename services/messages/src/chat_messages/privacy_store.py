"""SQL of blocks, privacy settings and hidden conversations (privacy.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages.models import members as M
from chat_messages.models import user_blocks as B
from chat_messages.models import user_settings as S

Pair = tuple[str, str]  # (who blocked, whom)


async def add_block(conn: AsyncConnection, user: str, blocked: str, ts: str) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(B).values(user_id=user, blocked_id=blocked, created_at=ts))
    except IntegrityError:
        pass  # already blocked: nothing changes


async def remove_block(conn: AsyncConnection, user: str, blocked: str) -> None:
    await conn.execute(delete(B).where(B.c.user_id == user, B.c.blocked_id == blocked))


async def blocks_of(conn: AsyncConnection, user: str) -> list[Row[Any, Any]]:
    q = select(B.c.blocked_id, B.c.created_at).where(B.c.user_id == user).order_by(B.c.created_at, B.c.blocked_id)
    return list((await conn.execute(q)).all())


async def blocked_pairs(conn: AsyncConnection, pairs: Iterable[Pair]) -> set[Pair]:
    """Which of the (blocker, blocked) ``pairs`` exist, in one query."""
    wanted = set(pairs)
    if not wanted:
        return set()
    q = select(B.c.user_id, B.c.blocked_id).where(
        B.c.user_id.in_({a for a, _ in wanted}), B.c.blocked_id.in_({b for _, b in wanted})
    )
    return {(r.user_id, r.blocked_id) for r in (await conn.execute(q)).all()} & wanted


def blocked_in_convs(conn: Connection, convs: Iterable[str], senders: Iterable[str]) -> set[Pair]:
    """(conv, sender) where another member of ``conv`` blocked ``sender`` (the write path's
    check of dm sends: one query per batch that has any)."""
    convs, senders = set(convs), set(senders)
    if not convs:
        return set()
    q = (
        select(M.c.conv_id, B.c.blocked_id)
        .join(B, B.c.user_id == M.c.user_id)
        .where(M.c.conv_id.in_(convs), B.c.blocked_id.in_(senders))
    )
    return {(r.conv_id, r.blocked_id) for r in conn.execute(q).all()}


async def group_invites(conn: AsyncConnection, users: Iterable[str]) -> dict[str, str]:
    """Each user's setting; users without a row are absent (the default, "everyone")."""
    users = set(users)
    if not users:
        return {}
    q = select(S.c.user_id, S.c.group_invites).where(S.c.user_id.in_(users))
    return {r.user_id: r.group_invites for r in (await conn.execute(q)).all()}


async def set_group_invites(conn: AsyncConnection, user: str, value: str) -> None:
    res = await conn.execute(update(S).where(S.c.user_id == user).values(group_invites=value))
    if res.rowcount == 0:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(S).values(user_id=user, group_invites=value))
        except IntegrityError:  # a concurrent first write: ours is the later one
            await conn.execute(update(S).where(S.c.user_id == user).values(group_invites=value))


async def hide(conn: AsyncConnection, conv: str, user: str, at_seq: int) -> None:
    await conn.execute(update(M).where(M.c.conv_id == conv, M.c.user_id == user).values(hidden_seq=at_seq))
