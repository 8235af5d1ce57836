"""SQL of the read path: history pages, sync and event ranges (conversations.py).

Every read is a range scan of the primary key (conv_id, seq), forwards or backwards;
bench/README.md shows the plans in a conversation of 10,000,000 events. Rows become wire
dicts directly (``wire_from_row``), and the statements are built once. On PostgreSQL a
page is ONE statement with its permission facts (``page``) and a sync of many
conversations ONE statement (``ranges``): each round trip to the database costs more
than the query (a hundred of them ~30 ms). On SQLite (in process) the same reads are
plain statements one after another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from chat_proto.messages_api import SyncPosition
from sqlalchemy import Integer, Select, String, and_, bindparam, column, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages.models import conversations as C
from chat_messages.models import events as E
from chat_messages.models import members as M

# An event's columns in the order ``wire_from_row`` unpacks them (the read statements select these).
EVENT_COLUMNS = (
    E.c.conv_id, E.c.seq, E.c.kind, E.c.sender, E.c.ts, E.c.client_msg_id, E.c.body, E.c.attachments,
    E.c.reply_to, E.c.target, E.c.user_id, E.c.role, E.c.deleted, E.c.changes,
)  # fmt: skip

# Events one sync statement is expected to return at most (seqs are dense, so a
# conversation holds last_seq - after of them past ``after``): bounds what is read beyond
# the byte budget of a call.
SYNC_ROWS_PER_QUERY = 1000


class Access(NamedTuple):
    """What a read checks: the conversation's kind, private, archived, and the reader's
    role in it (None: not a member)."""

    kind: str
    private: bool
    archived: bool
    role: str | None


def wire_from_row(r: Sequence[Any]) -> dict[str, Any]:
    """``store.event_from_row(r).to_wire()`` without building the model, for a row of
    ``EVENT_COLUMNS``: a page is 50 rows and a sync thousands (one tuple unpack here;
    attribute access on a Row costs ~0.5 µs per column). Rows hold what ``store.event_row``
    stored (JSON members dumped with ``exclude_none``), so the result is the same dict
    (test_messages_reads.py compares the two)."""
    conv, seq, kind, sender, ts, client_msg_id, body, attachments, reply_to, target, user_id, role, deleted, changes = r
    d: dict[str, Any] = {"conv": conv, "seq": seq, "kind": kind, "sender": sender, "ts": ts}
    if client_msg_id is not None:
        d["client_msg_id"] = client_msg_id
    if deleted:  # its text is gone (Event.to_wire)
        d["body"] = d["attachments"] = None
    else:
        if body is not None:
            d["body"] = body
        if attachments is not None:
            d["attachments"] = attachments
    if reply_to is not None:
        d["reply_to"] = reply_to
    if target is not None:
        d["target"] = target
    if user_id is not None:
        d["user_id"] = user_id
    if role is not None:
        d["role"] = role
    if deleted:
        d["deleted"] = True
    if changes is not None:
        d["changes"] = changes
    return d


# --- statements (built once: the read path does not rebuild and re-key one per call) ----------
def _range(conv: Any, before: bool, after: bool) -> Select[Any]:
    q = select(*EVENT_COLUMNS).where(E.c.conv_id == conv)
    if before:
        q = q.where(E.c.seq < bindparam("before"))
    if after:
        q = q.where(E.c.seq > bindparam("after")).order_by(E.c.seq.asc())
    else:
        q = q.order_by(E.c.seq.desc())
    return q.limit(bindparam("limit", type_=Integer))


_SHAPES = [(b, a) for b in (False, True) for a in (False, True)]
_HISTORY = {shape: _range(bindparam("conv"), *shape) for shape in _SHAPES}

_ACCESS_COLUMNS = (C.c.kind, C.c.private, C.c.archived, M.c.role)
_ACCESS_FROM = C.outerjoin(M, and_(M.c.conv_id == C.c.id, M.c.user_id == bindparam("user")))
_ACCESS = select(*_ACCESS_COLUMNS).select_from(_ACCESS_FROM).where(C.c.id == bindparam("conv"))


def _page_pg(before: bool, after: bool) -> Select[Any]:
    """PostgreSQL: the access facts and the page in ONE statement (the page a LATERAL range
    scan; a conversation without events in range gives one row of NULL event columns)."""
    e = _range(C.c.id, before, after).lateral("e")
    q = select(*_ACCESS_COLUMNS, e).select_from(_ACCESS_FROM.outerjoin(e, true()))
    return q.where(C.c.id == bindparam("conv"))


_PAGE_PG = {shape: _page_pg(*shape) for shape in _SHAPES}


def _ranges_pg() -> Select[Any]:
    """PostgreSQL: the events after each of many (conv, after) pairs, up to ``limit`` each,
    in ONE statement: a LATERAL range scan per pair of ``unnest(:convs, :afters)`` (one
    plan whatever the number of pairs)."""
    p = (
        func.unnest(bindparam("convs", type_=ARRAY(String)), bindparam("afters", type_=ARRAY(Integer)))
        .table_valued(column("conv", String), column("after", Integer))
        .render_derived(name="p")
    )
    q = select(*EVENT_COLUMNS).where(E.c.conv_id == p.c.conv, E.c.seq > p.c.after).order_by(E.c.seq)
    e = q.limit(bindparam("limit", type_=Integer)).lateral("e")
    return select(e).select_from(p.join(e, true()))


_RANGES_PG = _ranges_pg()


def _params(before: int | None, after: int | None, limit: int, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit, **more}
    if before is not None:
        params["before"] = before
    if after is not None:
        params["after"] = after
    return params


def history_query(conv: str, before: int | None, after: int | None, limit: int) -> tuple[Select[Any], dict[str, Any]]:
    """Up to ``limit`` events of ``conv`` between ``after`` and ``before`` (exclusive): the
    oldest first after ``after``, else the newest first; the statement and its parameters."""
    return _HISTORY[(before is not None, after is not None)], _params(before, after, limit, conv=conv)


def page_query(
    conv: str, user: str, before: int | None, after: int | None, limit: int
) -> tuple[Select[Any], dict[str, Any]]:
    """PostgreSQL: ``history_query`` joined to the access facts of ``user`` (``page``)."""
    return _PAGE_PG[(before is not None, after is not None)], _params(before, after, limit, conv=conv, user=user)


def ranges_query(wanted: Sequence[tuple[str, int]], limit: int) -> tuple[Select[Any], dict[str, Any]]:
    """PostgreSQL: the statement of ``ranges`` and its parameters."""
    return _RANGES_PG, {"convs": [c for c, _ in wanted], "afters": [a for _, a in wanted], "limit": limit}


# --- reads ------------------------------------------------------------------------------------
def _in_order(evs: list[dict[str, Any]], after: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Rows fetched with ``limit + 1``: the first ``limit``, oldest first, and whether there are more."""
    has_more = len(evs) > limit
    evs = evs[:limit]
    if after is None:
        evs.reverse()
    return evs, has_more


async def events(
    conn: AsyncConnection, conv: str, before: int | None, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` events as wire dicts, oldest first, and whether there are more."""
    stmt, params = history_query(conv, before, after, limit + 1)
    rows = (await conn.execute(stmt, params)).all()
    return _in_order([wire_from_row(r) for r in rows], after, limit)


async def access(conn: AsyncConnection, conv: str, user: str) -> Access | None:
    """None: no such conversation."""
    r = (await conn.execute(_ACCESS, {"conv": conv, "user": user})).first()
    return None if r is None else Access(*r)


async def page(
    conn: AsyncConnection, conv: str, user: str, before: int | None, after: int | None, limit: int
) -> tuple[Access | None, list[dict[str, Any]], bool]:
    """What ``user`` may check before reading (None: no such conversation) and up to
    ``limit`` events (``events``); the caller discards the events when the check refuses."""
    if conn.dialect.name != "postgresql":
        found = await access(conn, conv, user)
        evs, more = await events(conn, conv, before, after, limit) if found else ([], False)
        return found, evs, more
    stmt, params = page_query(conv, user, before, after, limit + 1)
    rows = (await conn.execute(stmt, params)).all()
    if not rows:
        return None, [], False
    n = len(_ACCESS_COLUMNS)
    evs = [wire_from_row(r[n:]) for r in rows if r[n] is not None]  # conv_id NULL: no events
    return Access(*rows[0][:n]), *_in_order(evs, after, limit)


async def positions(conn: AsyncConnection, user: str, convs: Iterable[str]) -> dict[str, int]:
    """Of ``convs``, those ``user`` is a member of, each with its last_seq, in one query."""
    q = select(M.c.conv_id, C.c.last_seq).join(C, C.c.id == M.c.conv_id)
    q = q.where(M.c.user_id == user, M.c.conv_id.in_(set(convs)))
    return {r.conv_id: int(r.last_seq) for r in (await conn.execute(q)).all()}


async def ranges(
    conn: AsyncConnection, wanted: Sequence[tuple[str, int]], limit: int
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``limit`` events after each (conv, after) of ``wanted`` (distinct convs),
    oldest first, as wire dicts: ONE statement on PostgreSQL (``_RANGES_PG``)."""
    out: dict[str, list[dict[str, Any]]] = {c: [] for c, _ in wanted}
    if not wanted:
        return out
    if conn.dialect.name != "postgresql":
        for c, a in wanted:
            stmt, params = history_query(c, None, a, limit)
            out[c] = [wire_from_row(r) for r in (await conn.execute(stmt, params)).all()]
        return out
    for r in (await conn.execute(*ranges_query(wanted, limit))).all():
        out[r[0]].append(wire_from_row(r))
    for evs in out.values():
        evs.sort(key=lambda e: e["seq"])  # already in order (one pass), by plan rather than by SQL
    return out


def sync_group(todo: Sequence[SyncPosition], last: dict[str, int], per_conv: int) -> list[SyncPosition]:
    """The first positions of ``todo`` (at least one) expected to hold at most
    ``SYNC_ROWS_PER_QUERY`` events together (``per_conv + 1`` at most each)."""
    group: list[SyncPosition] = []
    rows = 0
    for p in todo:
        n = min(per_conv + 1, max(0, last[p.conv] - p.after))
        if group and rows + n > SYNC_ROWS_PER_QUERY:
            break
        group.append(p)
        rows += n
    return group
