"""The SQLite engine lends its one connection to one user at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chat_common.db import make_engine
from sqlalchemy import text


async def test_probe_cannot_roll_back_an_open_write(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    writing = asyncio.Event()

    async def writer() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            writing.set()
            await asyncio.sleep(0.2)  # a probe arrives while this transaction is open
            await conn.execute(text("INSERT INTO t VALUES (2)"))

    async def probe() -> None:
        await writing.wait()
        async with engine.connect() as conn:  # returns with a ROLLBACK
            await conn.execute(text("SELECT 1"))

    await asyncio.gather(writer(), probe())
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all()
    await engine.dispose()
    assert rows == [1, 2]
