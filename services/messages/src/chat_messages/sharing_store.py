"""SQL of who shares conversations with whom (for the presence service)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages.models import conversations as C
from chat_messages.models import members as M
from chat_messages.models import user_blocks as B


async def shared_with(conn: AsyncConnection, user: str, others: list[str]) -> set[str]:
    """The ids among ``others`` that are a member of some conversation ``user`` is a member of."""
    if not others:
        return set()
    me, them = M.alias("me"), M.alias("them")
    blockers = select(B.c.user_id).where(B.c.blocked_id == user)  # they blocked ``user``
    q = (
        select(them.c.user_id)
        .select_from(me.join(them, them.c.conv_id == me.c.conv_id))
        .where(me.c.user_id == user, them.c.user_id.in_(set(others)), them.c.user_id.not_in(blockers))
        .distinct()
    )
    return {r.user_id for r in (await conn.execute(q)).all()}


async def small_conversations(conn: AsyncConnection, users: list[str], max_members: int) -> Sequence[Row[Any, Any]]:
    """(user_id, conv_id) for each conversation of ``users`` that has at least two members
    and is a dm, a group, or a channel of at most ``max_members`` members."""
    if not users:
        return []
    m2, m3 = M.alias("m2"), M.alias("m3")
    count = select(func.count()).select_from(m2).where(m2.c.conv_id == C.c.id).scalar_subquery()
    # not into conversations with someone the user blocked: they must not see the presence
    with_blocked = (
        select(m3.c.conv_id)
        .select_from(m3.join(B, B.c.blocked_id == m3.c.user_id))
        .where(m3.c.conv_id == M.c.conv_id, B.c.user_id == M.c.user_id)
    )
    q = (
        select(M.c.user_id, M.c.conv_id)
        .join(C, C.c.id == M.c.conv_id)
        .where(
            M.c.user_id.in_(set(users)),
            count >= 2,
            or_(C.c.kind != "channel", count <= max_members),
            ~with_blocked.exists(),
        )
    )
    return (await conn.execute(q)).all()


async def public_channels_among(conn: AsyncConnection, convs: list[str]) -> set[str]:
    """The public channels among ``convs`` (anyone signed in may read them)."""
    if not convs:
        return set()
    q = select(C.c.id).where(C.c.id.in_(set(convs)), C.c.kind == "channel", C.c.private.is_(False))
    return {r.id for r in (await conn.execute(q)).all()}
