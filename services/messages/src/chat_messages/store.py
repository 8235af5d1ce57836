"""SQL of the messages service. Core SQLAlchemy; the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import orjson
from chat_proto.events import Event
from sqlalchemy import Integer, and_, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_messages.models import conversations as C
from chat_messages.models import events as E
from chat_messages.models import members as M

# allocate_many on PostgreSQL: every conversation's seqs in one statement (the rows are
# locked in id order already, by senders_roles in the same transaction)
_ALLOCATE_MANY = text(
    "UPDATE conversations AS c SET last_seq = c.last_seq + v.n"
    " FROM unnest(CAST(:ids AS text[]), CAST(:ns AS int[])) AS v(id, n)"
    " WHERE c.id = v.id RETURNING c.id, c.last_seq"
)

# allocate_many on SQLite: one statement, the counts as a JSON object {conv: n}
_ALLOCATE_MANY_SQLITE = text(
    "UPDATE conversations SET last_seq = last_seq"
    " + (SELECT value FROM json_each(:counts) WHERE key = conversations.id)"
    " WHERE id IN (SELECT key FROM json_each(:counts)) RETURNING id, last_seq"
)
# The write path's statements, built once (building a statement per batch cost more
# Python than running it): the lists are expanding parameters.
_ALLOCATE = (
    update(C)
    .where(C.c.id == bindparam("conv"))
    .values(last_seq=C.c.last_seq + bindparam("n", type_=Integer))
    .returning(C.c.last_seq)
)
_SENDERS_ROLES = (
    select(C.c.id, C.c.kind, C.c.private, C.c.archived, M.c.user_id, M.c.role)
    .select_from(C.outerjoin(M, and_(M.c.conv_id == C.c.id, M.c.user_id.in_(bindparam("users", expanding=True)))))
    .where(C.c.id.in_(bindparam("convs", expanding=True)))
    .order_by(C.c.id)
    # FOR UPDATE OF conversations (in id order, so replicas never deadlock): a membership
    # change committing between this check and the insert would otherwise let a member who
    # was just removed post after their own member_left. On SQLite the transaction holds
    # the database's write lock from its start (write_tx: BEGIN IMMEDIATE).
    .with_for_update(of=C)
)
# Column-wise IN lists on the unique index (conv_id, sender, client_msg_id), exact keys
# filtered after; see senders_roles().
_EXISTING_SENDS = select(E).where(
    E.c.conv_id.in_(bindparam("convs", expanding=True)),
    E.c.sender.in_(bindparam("senders", expanding=True)),
    E.c.client_msg_id.in_(bindparam("cmids", expanding=True)),
)
_MESSAGE_SEQS = select(E.c.conv_id, E.c.seq).where(
    E.c.conv_id.in_(bindparam("convs", expanding=True)),
    E.c.seq.in_(bindparam("seqs", expanding=True)),
    E.c.kind == "message",
)

SendKey = tuple[str, str, str]  # (conv, sender, client_msg_id)
Pair = tuple[str, str]  # (conv, user)


class Watermarks(NamedTuple):
    delivered: int
    read: int
    last_seq: int  # the conversation's, for clamping


def event_from_row(r: Row[Any] | Any) -> Event:
    return Event(
        conv=r.conv_id,
        seq=r.seq,
        kind=r.kind,
        sender=r.sender,
        ts=r.ts,
        client_msg_id=r.client_msg_id,
        body=None if r.deleted else r.body,
        attachments=None if r.deleted else r.attachments,
        reply_to=r.reply_to,
        target=r.target,
        user_id=r.user_id,
        role=r.role,
        deleted=True if r.deleted else None,
        changes=r.changes,
    )


def event_row(ev: Event) -> dict[str, Any]:
    return {
        "conv_id": ev.conv,
        "seq": ev.seq,
        "kind": ev.kind,
        "sender": ev.sender,
        "ts": ev.ts,
        "client_msg_id": ev.client_msg_id,
        "body": ev.body,
        "attachments": [a.model_dump(exclude_none=True) for a in ev.attachments] if ev.attachments else None,
        "reply_to": ev.reply_to,
        "target": ev.target,
        "user_id": ev.user_id,
        "role": ev.role,
        "deleted": bool(ev.deleted),
        "changes": ev.changes.model_dump(exclude_none=True) if ev.changes else None,
    }


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def check(self) -> None:
        """Raises when the database cannot be reached. Through ``tx()``: on SQLite every
        transaction of the engine shares ONE connection and only ``tx()`` serialises them; a
        bare ``engine.connect()`` would ROLLBACK a concurrent write when returned to the pool.
        (The write path's ``write_tx`` has its own connection, serialised by SQLite's lock.)"""
        async with self.tx() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        # On SQLite the engine itself lends its one connection to one transaction at a time.
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """For reads that need no transaction. On PostgreSQL a pooled connection in
        autocommit: no BEGIN and COMMIT round trips (under READ COMMITTED each statement
        takes its own snapshot inside a transaction too). On SQLite ``tx()``, which is what
        serialises the users of its one connection."""
        if self.engine.dialect.name == "sqlite":
            async with self.tx() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    # --- conversations -------------------------------------------------------------------
    async def get_conversation(self, conn: AsyncConnection, conv: str, lock: bool = False) -> Row[Any] | None:
        """``lock``: hold the conversation row until commit (membership changes and sends
        on one conversation are serialised by it)."""
        q = select(C).where(C.c.id == conv)
        return (await conn.execute(q.with_for_update() if lock else q)).first()

    async def find_dm(self, conn: AsyncConnection, dm_key: str) -> Row[Any] | None:
        return (await conn.execute(select(C).where(C.c.dm_key == dm_key))).first()

    async def insert_conversation(self, conn: AsyncConnection, row: dict[str, Any]) -> None:
        await conn.execute(insert(C).values(**row))

    async def update_conversation(self, conn: AsyncConnection, conv: str, values: dict[str, Any]) -> None:
        """A rename may violate the unique name_key index: IntegrityError (the caller's 409)."""
        await conn.execute(update(C).where(C.c.id == conv).values(**values))

    async def public_channels(
        self, conn: AsyncConnection, user: str, pattern: str | None, after_key: str | None, limit: int
    ) -> Sequence[Row[Any, Any]]:
        """Public channels by name_key (keyset: after ``after_key``), optionally whose
        name_key is LIKE ``pattern`` (escape ``\\``); with ``member_count`` and the caller's
        role, delivered_seq and read_seq (None when not a member). ``limit`` rows at most."""
        count = select(func.count()).select_from(M).where(M.c.conv_id == C.c.id).scalar_subquery()
        me = M.alias("me")
        q = (
            select(C, count.label("member_count"), me.c.role, me.c.delivered_seq, me.c.read_seq)
            .select_from(C.outerjoin(me, and_(me.c.conv_id == C.c.id, me.c.user_id == user)))
            .where(C.c.kind == "channel", C.c.private.is_(False))
            .order_by(C.c.name_key)
            .limit(limit)
        )
        if pattern:
            q = q.where(C.c.name_key.like(pattern, escape="\\"))
        if after_key is not None:
            q = q.where(C.c.name_key > after_key)
        return (await conn.execute(q)).all()

    # The write path's statements are synchronous functions of a ``Connection``: the writer
    # runs its whole transaction in one ``write_tx`` (one hop to SQLite's writer thread);
    # async callers use ``await conn.run_sync(store.allocate, conv, n)``.
    def allocate(self, conn: Connection, conv: str, count: int) -> int:
        """Reserve ``count`` seqs; returns the first. Row-locks the conversation until commit."""
        last = conn.execute(_ALLOCATE, {"conv": conv, "n": count}).scalar_one()
        return int(last) - count + 1

    def allocate_many(self, conn: Connection, counts: dict[str, int]) -> dict[str, int]:
        """``allocate`` for several conversations: the first seq of each, in ONE statement
        whatever their number, not one round trip per conversation. The caller holds the
        rows' locks, taken in id order (``senders_roles`` in the same transaction: no
        deadlock with another writer); SQLite has one writer at a time anyway."""
        convs = sorted(counts)
        if len(convs) < 2:
            return {conv: self.allocate(conn, conv, counts[conv]) for conv in convs}
        if conn.dialect.name == "postgresql":
            rows = (conn.execute(_ALLOCATE_MANY, {"ids": convs, "ns": [counts[c] for c in convs]})).all()
        else:
            # SQLite has one writer at a time (no row locks to order): one UPDATE ... RETURNING.
            rows = conn.execute(_ALLOCATE_MANY_SQLITE, {"counts": orjson.dumps(counts).decode()}).all()
        first = {str(conv): int(last) - counts[str(conv)] + 1 for conv, last in rows}
        if len(first) != len(convs):  # a conversation vanished: as allocate would, fail the batch
            raise NoResultFound(f"conversations not found: {sorted(set(convs) - set(first))}")
        return first

    # --- members -------------------------------------------------------------------------
    async def get_member(self, conn: AsyncConnection, conv: str, user: str) -> Row[Any] | None:
        q = select(M).where(and_(M.c.conv_id == conv, M.c.user_id == user))
        return (await conn.execute(q)).first()

    async def members_of(self, conn: AsyncConnection, conv: str) -> Sequence[Row[Any, Any]]:
        q = select(M.c.user_id, M.c.role).where(M.c.conv_id == conv).order_by(M.c.joined_at)
        return (await conn.execute(q)).all()

    async def insert_members(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(insert(M), rows)

    async def delete_member(self, conn: AsyncConnection, conv: str, user: str) -> None:
        await conn.execute(delete(M).where(and_(M.c.conv_id == conv, M.c.user_id == user)))

    async def set_role(self, conn: AsyncConnection, conv: str, user: str, role: str) -> None:
        await conn.execute(update(M).where(and_(M.c.conv_id == conv, M.c.user_id == user)).values(role=role))

    async def count_role(self, conn: AsyncConnection, conv: str, role: str) -> int:
        q = select(M.c.user_id).where(and_(M.c.conv_id == conv, M.c.role == role))
        return len((await conn.execute(q)).all())

    async def conversations_of(self, conn: AsyncConnection, user: str) -> Sequence[Row[Any, Any]]:
        q = (
            select(C, M.c.role, M.c.delivered_seq, M.c.read_seq)
            .join(M, M.c.conv_id == C.c.id)
            # hidden (privacy.py) until the next event
            .where(M.c.user_id == user, or_(M.c.hidden_seq.is_(None), M.c.hidden_seq != C.c.last_seq))
            .order_by(C.c.created_at, C.c.id)
        )
        return (await conn.execute(q)).all()

    async def conv_positions_page(
        self, conn: AsyncConnection, after: str | None, limit: int
    ) -> Sequence[Row[Any, Any]]:
        """Conversations by id after ``after`` (keyset paging over the primary key)."""
        q = select(C.c.id, C.c.last_seq).order_by(C.c.id).limit(limit)
        if after is not None:
            q = q.where(C.c.id > after)
        return (await conn.execute(q)).all()

    async def conv_positions_of(self, conn: AsyncConnection, user: str) -> Sequence[Row[Any, Any, Any]]:
        q = select(C.c.id, C.c.last_seq, M.c.role).join(M, M.c.conv_id == C.c.id).where(M.c.user_id == user)
        return (await conn.execute(q)).all()

    def senders_roles(
        self, conn: Connection, pairs: Iterable[tuple[str, str]]
    ) -> tuple[dict[str, tuple[str, bool, bool]], dict[tuple[str, str], str]]:
        """For a batch of (conv, user): each existing conversation's (kind, private, archived),
        and the role of each user who is a member, in ONE query (the write path counts round
        trips).

        Column-wise IN lists, exact pairs filtered here: row-value IN lists of a batch's
        size planned badly on PostgreSQL (100+ ms for a few hundred pairs).
        """
        pairs = set(pairs)
        if not pairs:
            return {}, {}
        convs, users = list({c for c, _ in pairs}), list({u for _, u in pairs})
        kinds: dict[str, tuple[str, bool, bool]] = {}
        roles: dict[tuple[str, str], str] = {}
        for r in conn.execute(_SENDERS_ROLES, {"users": users, "convs": convs}).all():
            kinds[r.id] = (r.kind, bool(r.private), bool(r.archived))
            if r.user_id is not None and (r.id, r.user_id) in pairs:
                roles[(r.id, r.user_id)] = r.role
        return kinds, roles

    # --- events --------------------------------------------------------------------------
    def insert_events(self, conn: Connection, evs: list[Event]) -> None:
        if evs:
            conn.execute(insert(E), [event_row(e) for e in evs])

    def existing_sends(self, conn: Connection, keys: Iterable[SendKey]) -> dict[SendKey, Event]:
        wanted = set(keys)
        if not wanted:
            return {}
        params = {
            "convs": list({k[0] for k in wanted}),
            "senders": list({k[1] for k in wanted}),
            "cmids": list({k[2] for k in wanted}),
        }
        out: dict[SendKey, Event] = {}
        for r in conn.execute(_EXISTING_SENDS, params).all():
            key = (r.conv_id, r.sender, r.client_msg_id)
            if key in wanted:
                out[key] = event_from_row(r)
        return out

    async def get_event(self, conn: AsyncConnection, conv: str, seq: int) -> Event | None:
        r = (await conn.execute(select(E).where(and_(E.c.conv_id == conv, E.c.seq == seq)))).first()
        return event_from_row(r) if r else None

    async def member_convs(self, conn: AsyncConnection, user: str, convs: Iterable[str]) -> set[str]:
        """Which of ``convs`` ``user`` is a member of, in one query."""
        q = select(M.c.conv_id).where(M.c.user_id == user, M.c.conv_id.in_(set(convs)))
        return {r.conv_id for r in (await conn.execute(q)).all()}

    # --- edits and deletes -----------------------------------------------------------------
    def message_seqs(self, conn: Connection, wanted: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which (conv, seq) of ``wanted`` are ``message`` events (deleted or not), in ONE query
        (column-wise IN lists on the primary key, exact pairs filtered here)."""
        wanted = set(wanted)
        if not wanted:
            return set()
        params = {"convs": list({c for c, _ in wanted}), "seqs": list({s for _, s in wanted})}
        return {(r.conv_id, r.seq) for r in conn.execute(_MESSAGE_SEQS, params).all()} & wanted

    async def find_delete(self, conn: AsyncConnection, conv: str, target: int) -> Event | None:
        """The ``delete`` event of message ``target`` (index ix_events_target)."""
        q = select(E).where(E.c.conv_id == conv, E.c.target == target, E.c.kind == "delete").order_by(E.c.seq).limit(1)
        r = (await conn.execute(q)).first()
        return event_from_row(r) if r else None

    async def erase_message(self, conn: AsyncConnection, conv: str, target: int) -> None:
        """A deleted message's text is gone: the message and every edit of it keep their
        place in the log with ``body``/``attachments`` NULL and ``deleted`` set."""
        gone = {"body": None, "attachments": None, "deleted": True}
        await conn.execute(
            update(E).where(E.c.conv_id == conv, E.c.seq == target, E.c.kind == "message").values(**gone)
        )
        await conn.execute(
            update(E).where(E.c.conv_id == conv, E.c.target == target, E.c.kind == "edit").values(**gone)
        )

    # --- receipts (delivered/read watermarks on the members row) -----------------------------
    async def lock_watermarks(self, conn: AsyncConnection, pairs: Iterable[Pair]) -> dict[Pair, Watermarks]:
        """The current watermarks of each (conv, user) that is a member, with the
        conversation's last_seq, in ONE query; the members rows stay locked until commit
        (in key order, so concurrent batches never deadlock). Non-members are absent."""
        pairs = set(pairs)
        if not pairs:
            return {}
        q = (
            select(M.c.conv_id, M.c.user_id, M.c.delivered_seq, M.c.read_seq, C.c.last_seq)
            .join(C, C.c.id == M.c.conv_id)
            .where(M.c.conv_id.in_({c for c, _ in pairs}), M.c.user_id.in_({u for _, u in pairs}))
            .order_by(M.c.conv_id, M.c.user_id)
            .with_for_update(of=M)
        )
        out: dict[Pair, Watermarks] = {}
        for r in (await conn.execute(q)).all():
            if (r.conv_id, r.user_id) in pairs:
                out[(r.conv_id, r.user_id)] = Watermarks(int(r.delivered_seq), int(r.read_seq), int(r.last_seq))
        return out

    async def raise_watermarks(self, conn: AsyncConnection, rows: list[tuple[Pair, int, int]]) -> None:
        """Set (delivered, read) per (conv, user), never lowering either (GREATEST, written
        as CASE for SQLite); one executemany."""
        if not rows:
            return
        d, r = bindparam("new_delivered", type_=Integer), bindparam("new_read", type_=Integer)
        stmt = (
            update(M)
            .where(M.c.conv_id == bindparam("key_conv"), M.c.user_id == bindparam("key_user"))
            .values(
                delivered_seq=case((M.c.delivered_seq < d, d), else_=M.c.delivered_seq),
                read_seq=case((M.c.read_seq < r, r), else_=M.c.read_seq),
            )
        )
        params = [{"key_conv": c, "key_user": u, "new_delivered": dv, "new_read": rv} for (c, u), dv, rv in rows]
        await conn.execute(stmt, params)

    async def watermarks_of(self, conn: AsyncConnection, conv: str) -> Sequence[Row[Any, Any, Any]]:
        q = select(M.c.user_id, M.c.delivered_seq, M.c.read_seq).where(M.c.conv_id == conv).order_by(M.c.user_id)
        return (await conn.execute(q)).all()
