"""SQL of the media service: uploads and the messages that reference them. Core
SQLAlchemy; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_media.models import media as M
from chat_media.models import refs as R


class MediaStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ping(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT 1"))

    async def insert(self, row: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(M).values(**row))

    async def get(self, media_id: str) -> Row[Any] | None:
        async with self.engine.begin() as conn:
            return (await conn.execute(select(M).where(M.c.id == media_id))).first()

    async def of_owner(self, owner: str, ids: Iterable[str]) -> dict[str, Row[Any]]:
        """The rows among ``ids`` that ``owner`` uploaded."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(M).where(M.c.owner == owner, M.c.id.in_(set(ids))))).all()
        return {r.id: r for r in rows}

    async def bytes_of(self, owner: str) -> int:
        """What ``owner``'s uploads take (files and thumbnails) until collected."""
        q = select(func.coalesce(func.sum(M.c.size + func.coalesce(M.c.thumb_size, 0)), 0)).where(M.c.owner == owner)
        async with self.engine.begin() as conn:
            return int((await conn.execute(q)).scalar_one())

    async def ref_convs(self, media_id: str) -> list[str]:
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(R.c.conv).where(R.c.media_id == media_id).distinct())).all()
        return [r.conv for r in rows]

    # --- references (from the event stream) ----------------------------------------------
    async def add_refs(self, conv: str, seq: int, media_ids: list[str]) -> None:
        """Message ``(conv, seq)`` attaches ``media_ids`` (known ids only; idempotent)."""
        async with self.engine.begin() as conn:
            known = {r.id for r in (await conn.execute(select(M.c.id).where(M.c.id.in_(set(media_ids))))).all()}
            rows = [{"media_id": m, "conv": conv, "seq": seq} for m in media_ids if m in known]
            if not rows:
                return
            await conn.execute(_insert_ignore(conn, R), rows)
            await conn.execute(
                update(M).where(M.c.id.in_([r["media_id"] for r in rows])).values(orphaned_at=None, referenced=True)
            )

    async def remove_refs(self, conv: str, seq: int, now: float) -> list[str]:
        """Message ``(conv, seq)`` was deleted: its references go; media left with none are
        orphaned from ``now``. Returns the media ids it referenced."""
        async with self.engine.begin() as conn:
            ids = [r.media_id for r in (await conn.execute(select(R.c.media_id).where(_msg(conv, seq)))).all()]
            if not ids:
                return []
            await conn.execute(delete(R).where(_msg(conv, seq)))
            still = select(R.c.media_id).where(R.c.media_id.in_(ids))
            await conn.execute(update(M).where(M.c.id.in_(ids), M.c.id.not_in(still)).values(orphaned_at=now))
        return ids

    # --- collection ----------------------------------------------------------------------
    async def due(self, before: float, limit: int = 200) -> Sequence[Row[Any]]:
        """Uploads orphaned before ``before`` (no live reference)."""
        q = select(M).where(M.c.orphaned_at.is_not(None), M.c.orphaned_at <= before).limit(limit)
        async with self.engine.begin() as conn:
            return (await conn.execute(q)).all()

    async def forget(self, media_id: str, before: float) -> bool:
        """Delete the row if it is still orphaned since before ``before`` (not referenced
        meanwhile); True when deleted (then its objects go)."""
        async with self.engine.begin() as conn:
            res = await conn.execute(
                delete(M).where(M.c.id == media_id, M.c.orphaned_at.is_not(None), M.c.orphaned_at <= before)
            )
            return bool(res.rowcount)


def _msg(conv: str, seq: int) -> Any:
    return and_(R.c.conv == conv, R.c.seq == seq)


def _insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    return ins.on_conflict_do_nothing()
