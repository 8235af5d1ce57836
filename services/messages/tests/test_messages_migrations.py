"""0002: existing channels get their name_key; names that already collide are made unique."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from chat_common.db import _alembic_config, make_engine, migrate
from chat_messages.main import MIGRATIONS
from sqlalchemy import text
from sqlalchemy.engine import Connection

VERSION_TABLE = "alembic_version_messages"


async def test_backfill_of_name_keys_renames_collisions(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    cfg = _alembic_config(MIGRATIONS, VERSION_TABLE)

    def to_0001(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")

    rows = [
        ("c1", "channel", "General", "1"),
        ("c2", "channel", "general ", "2"),
        ("c3", "channel", "GENERAL", "3"),
        ("c4", "channel", "random", "4"),
        ("d1", "dm", None, "5"),
    ]
    async with eng.begin() as conn:
        await conn.run_sync(to_0001)
        for id_, kind, name, ts in rows:
            await conn.execute(
                text(
                    "INSERT INTO conversations (id, kind, name, private, created_by, created_at, last_seq, dm_key) "
                    "VALUES (:id, :kind, :name, 0, 'a', :ts, 0, NULL)"
                ),
                {"id": id_, "kind": kind, "name": name, "ts": ts},
            )
    await migrate(eng, MIGRATIONS, VERSION_TABLE)
    async with eng.begin() as conn:
        got = (
            await conn.execute(
                text("SELECT id, name, name_key, topic, description, archived FROM conversations ORDER BY id")
            )
        ).all()
    await eng.dispose()
    assert [tuple(r) for r in got] == [
        ("c1", "General", "general", "", "", 0),
        ("c2", "general (2)", "general (2)", "", "", 0),
        ("c3", "GENERAL (3)", "general (3)", "", "", 0),
        ("c4", "random", "random", "", "", 0),
        ("d1", None, None, "", "", 0),
    ]
