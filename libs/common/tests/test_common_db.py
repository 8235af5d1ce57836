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
