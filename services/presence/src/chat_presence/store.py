"""SQL of the presence service: durable last_seen. Core SQLAlchemy; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_presence.models import last_seen as T

CHUNK = 500


class LastSeenStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(self, rows: Iterable[tuple[str, str, bool]]) -> None:
        """Upsert ``(user_id, last_seen, online)``; a row never goes back in time (two
        replicas write the same changes, in any order)."""
        items = [{"user_id": u, "last_seen": ts, "online": on} for u, ts, on in rows]
        if not items:
            return
        async with self.engine.begin() as conn:
            for i in range(0, len(items), CHUNK):
                await conn.execute(_upsert(conn), items[i : i + CHUNK])

    async def get(self, users: list[str]) -> dict[str, tuple[str, bool]]:
        if not users:
            return {}
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(T).where(T.c.user_id.in_(set(users))))).all()
        return {r.user_id: (r.last_seen, bool(r.online)) for r in rows}

    async def marked_online(self) -> dict[str, str]:
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(T.c.user_id, T.c.last_seen).where(T.c.online.is_(True)))).all()
        return {r.user_id: r.last_seen for r in rows}

    async def ping(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT 1"))


def _upsert(conn: AsyncConnection) -> Any:
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(T)
    return ins.on_conflict_do_update(
        index_elements=[T.c.user_id],
        set_={"last_seen": ins.excluded.last_seen, "online": ins.excluded.online},
        where=ins.excluded.last_seen >= T.c.last_seen,
    )
