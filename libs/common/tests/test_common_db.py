"""The SQLite engine lends its one connection to one user at a time; write_tx runs a write
transaction in one hop (on SQLite on a writer thread with its own connection)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from chat_common.db import _SQLITE_WRITERS, make_engine, write_tx
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


async def test_database_unavailable_is_503_not_500() -> None:
    """A database that is away or restarting is ``unavailable`` (try again) over HTTP and RPC;
    other database errors and bugs stay ``internal``."""
    import httpx
    from chat_common.app import install_error_handlers, unexpected_error
    from chat_common.db import database_unavailable
    from chat_proto.errors import ErrorCode
    from fastapi import FastAPI
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    starting = DBAPIError("SELECT 1", {}, _PgError("57P03"))  # "not yet accepting connections"
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))
    duplicate = IntegrityError("INSERT", {}, _PgError("23505"))
    assert database_unavailable(starting) and database_unavailable(refused)
    assert not database_unavailable(duplicate) and not database_unavailable(ValueError())
    mapped = unexpected_error(starting)
    assert mapped is not None and mapped.code == ErrorCode.UNAVAILABLE
    assert unexpected_error(duplicate) is None

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/away")
    async def away() -> None:
        raise refused

    @app.get("/bug")
    async def bug() -> None:
        raise duplicate

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        r = await client.get("/away")
        assert (r.status_code, r.json()["code"]) == (503, "unavailable")
        r = await client.get("/bug")
        assert (r.status_code, r.json()["code"]) == (500, "internal")


# --- write_tx: a write transaction in one hop ---------------------------------------------


def _insert(conn: Connection, values: list[int], fail: bool = False) -> str:
    for v in values:
        conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": v})
    if fail:
        raise ValueError("the batch is bad")
    return threading.current_thread().name


async def _rows(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT x FROM t ORDER BY rowid"))).scalars().all())


async def _table(url: str) -> AsyncEngine:
    # make_engine is for files and servers; an in-memory database is one shared connection
    engine = make_engine(url) if url.count("/") > 2 else create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


async def test_write_tx_runs_whole_on_the_sqlite_writer_thread(tmp_path: Path) -> None:
    engine = await _table(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    thread = await write_tx(engine, _insert, [1, 2])
    assert thread.startswith("sqlite-writer")  # not the loop, not aiosqlite's thread
    with pytest.raises(ValueError):
        await write_tx(engine, _insert, [3], True)  # raised inside: rolled back whole
    assert await _rows(engine) == [1, 2]  # committed, and seen by the engine's own connection
    await engine.dispose()


async def test_write_tx_waits_for_a_write_of_the_other_connection(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: the writer takes SQLite's write lock before reading, so it waits for
    a transaction the engine's connection has open (busy_timeout) instead of failing, and
    what it reads inside is what it writes against."""
    engine = await _table(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    holding = asyncio.Event()

    async def other() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            await asyncio.sleep(0.3)
            await conn.execute(text("INSERT INTO t VALUES (2)"))

    def count_then_insert(conn: Connection) -> int:
        n = int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())
        conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": 10 + n})
        return n

    async def writer() -> int:
        await holding.wait()
        return await write_tx(engine, count_then_insert)

    _, seen = await asyncio.gather(other(), writer())
    assert seen == 2 and await _rows(engine) == [1, 2, 12]
    await engine.dispose()


async def test_write_tx_writer_is_closed_with_the_engine(tmp_path: Path) -> None:
    engine = await _table(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await write_tx(engine, _insert, [1])
    writer = _SQLITE_WRITERS[engine.sync_engine]
    await engine.dispose()
    assert engine.sync_engine not in _SQLITE_WRITERS
    with pytest.raises(RuntimeError):  # its thread is gone
        writer.thread.submit(print)
    await write_tx(engine, _insert, [2])  # a disposed engine may be used again: a new writer
    assert await _rows(engine) == [1, 2]
    await engine.dispose()


async def test_write_tx_on_an_in_memory_database_uses_the_engine() -> None:
    """A second connection to ``:memory:`` would be another database: the transaction runs
    on the engine's connection (``run_sync``), on no thread of its own."""
    engine = await _table("sqlite+aiosqlite://")
    thread = await write_tx(engine, _insert, [7])
    assert not thread.startswith("sqlite-writer")
    assert await _rows(engine) == [7]
    await engine.dispose()
