"""Database plumbing: one async engine per service, Alembic migrations at start-up.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) production; the
same SQLAlchemy code runs on both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_common.runtime_metrics import track_pool

log = logging.getLogger("chat.db")
T = TypeVar("T")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away, busy or restarting (nothing about the
    request): a pooled connection to a server that restarted, a refused or lost connection,
    and PostgreSQL's SQLSTATE classes 08 (connection exception), 53 (insufficient resources)
    and 57P (shutting down, or "not yet accepting connections" while starting). Callers answer
    503 ``unavailable`` (try again) or redeliver, never 500."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        if sqlstate.startswith(("08", "53", "57P")):
            return True
    return isinstance(exc, OperationalError | InterfaceError)


def _json_text(value: Any) -> str:
    """JSON columns written per row (the write path's attachments and changes): orjson, as
    they are read. Keys that are not strings become strings, as the stdlib's do."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_pragmas(dbapi_conn: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # ONE pooled connection, lent to one user at a time: SQLite has one writer anyway,
        # and every use of the engine (transactions, readiness probes) waits its turn instead
        # of sharing a connection mid-transaction (a probe's ROLLBACK would undo a write).
        # A hot write path's write_tx has a second connection of its own (_SqliteWriter).
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            _sqlite_pragmas(dbapi_conn)

        track_pool(engine.sync_engine, 1)
        return engine
    # No pre-ping: it costs a round trip per transaction on the write path. A connection
    # that died with its server fails its transaction (commands are redelivered, RPCs answer
    # 503), and SQLAlchemy then invalidates the whole pool, so the next checkout reconnects.
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=1800,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,  # JSON columns, read per row (the stdlib's is ~5x slower)
    )
    track_pool(engine.sync_engine, 2 * pool_size)
    return engine


class _SqliteWriter:
    """A second connection to the same SQLite file, owned by one thread, for write
    transactions that are run whole there: BEGIN IMMEDIATE, the statements, COMMIT, in ONE
    hop from the event loop. Through aiosqlite every statement is three or four hops to its
    thread and back (cursor, execute, fetch, close), each a thread and a loop wake-up: on a
    write path that counts round trips, those are most of a small transaction's time.

    BEGIN IMMEDIATE takes SQLite's write lock first, so the transaction's reads and writes
    see one state (as the engine's single pooled connection gives the other transactions);
    a write on that other connection waits for it (busy_timeout), and this one for it."""

    def __init__(self, url: Any) -> None:
        self.engine = create_engine(
            url.set(drivername="sqlite"),
            connect_args={"check_same_thread": False},  # disposed from the loop's thread
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            _sqlite_pragmas(dbapi_conn)
            dbapi_conn.isolation_level = None  # the driver's own BEGIN is deferred: ours below

        @event.listens_for(self.engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def close(self) -> None:
        self.thread.submit(self.engine.dispose).result()
        self.thread.shutdown(wait=True)


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, _SqliteWriter] = weakref.WeakKeyDictionary()


def _sqlite_writer(engine: AsyncEngine) -> _SqliteWriter | None:
    """The writer of a file database's engine (made on first use, closed with the engine's
    ``dispose()``); None for an in-memory one, which a second connection would not see."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    writer = _SQLITE_WRITERS.get(engine.sync_engine)
    if writer is None:
        writer = _SQLITE_WRITERS[engine.sync_engine] = _SqliteWriter(engine.url)

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _disposed(disposed: Engine) -> None:
            w = _SQLITE_WRITERS.pop(disposed, None)
            if w is not None:
                w.close()

    return writer


async def write_tx(engine: AsyncEngine, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(conn, *args)`` in one write transaction: committed when it returns, rolled
    back when it raises. ``fn`` is synchronous SQLAlchemy code (``conn.execute(...)``). On
    SQLite it runs whole on the writer's thread (one hop: see ``_SqliteWriter``); on
    PostgreSQL through ``run_sync`` on a pooled connection, a round trip per statement as
    any async transaction. For a hot write path; everything else uses ``engine.begin()``."""
    writer = _sqlite_writer(engine)
    if writer is None:
        async with engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    return await asyncio.get_running_loop().run_in_executor(writer.thread, writer._run, fn, args)


def _alembic_config(script_location: str, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["version_table"] = version_table
    return cfg


async def migrate(engine: AsyncEngine, script_location: str, version_table: str) -> None:
    """Upgrade to head. On PostgreSQL an advisory lock serialises concurrent replicas."""
    cfg = _alembic_config(script_location, version_table)

    def _run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    if engine.dialect.name == "sqlite":
        await _migrate_sqlite(engine, _run)
    else:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                key = zlib.crc32(version_table.encode()) & 0x7FFFFFFF
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            await conn.run_sync(_run)
    log.info("migrations at head", extra={"version_table": version_table})


async def _migrate_sqlite(engine: AsyncEngine, run: Any) -> None:
    """SQLite alters a table by copying it and dropping the old one (Alembic's batch mode),
    which foreign keys from other tables forbid while they are enforced: they are turned off
    for the migration (a PRAGMA that only works outside a transaction), checked after it,
    and turned on again."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # not DML: no implicit BEGIN
        try:
            await conn.run_sync(run)
            await conn.commit()
            broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
            await conn.commit()
            if broken:
                raise RuntimeError(f"foreign keys broken by a migration: {broken[:5]}")
        finally:
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            await conn.commit()


def run_env(context: EnvironmentContext, target_metadata: MetaData) -> None:
    """Body of each service's ``migrations/env.py``."""
    cfg = context.config
    conn = cfg.attributes.get("connection")
    version_table = cfg.attributes.get("version_table", "alembic_version")
    if conn is None:
        # Offline mode (`alembic upgrade --sql`), for reviewing SQL.
        context.configure(
            url=os.environ.get("DATABASE_URL", "sqlite://"),
            target_metadata=target_metadata,
            literal_binds=True,
            version_table=version_table,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
