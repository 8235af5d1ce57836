"""Conversation rules: create, list, get, join, add/remove members, roles, history.

Every membership change is an event in the conversation's log (with its own seq),
published to the conversation's subject and announced to the member concerned.
Every permission check consults the one table in ``permissions.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.events import Event
from chat_proto.messages_api import (
    AddMember,
    ConvScan,
    CreateConversation,
    EventsRange,
    HistoryQuery,
    MemberRef,
    SetRole,
    SyncQuery,
)
from chat_proto.timefmt import now_ts
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_messages import history_store
from chat_messages import permissions as perm
from chat_messages.ports import Publisher, UserDirectory
from chat_messages.privacy import check_may_add
from chat_messages.rules import clean_name, dm_key, name_key
from chat_messages.store import Store


def conv_view(row: Any, role: str | None, delivered: int = 0, read: int = 0) -> dict[str, Any]:
    last = int(row.last_seq)
    return {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "private": bool(row.private),
        "created_by": row.created_by,
        "created_at": row.created_at,
        "last_seq": last,
        "role": role,
        "delivered_seq": int(delivered),
        "read_seq": int(read),
        "unread": max(0, last - int(read)),
        "topic": row.topic or "",
        "description": row.description or "",
        "archived": bool(row.archived),
    }


def role_of(me: Row[Any] | None) -> str | None:
    return None if me is None else str(me.role)


class Conversations:
    def __init__(self, store: Store, publisher: Publisher, users: UserDirectory, max_group_size: int = 16) -> None:
        self.store = store
        self.pub = publisher
        self.users = users
        self.max_group = max_group_size

    # --- helpers -------------------------------------------------------------------------
    async def append(self, conn: AsyncConnection, conv: str, specs: list[dict[str, Any]]) -> list[Event]:
        first = await conn.run_sync(self.store.allocate, conv, len(specs))
        ts = now_ts()
        evs = [Event(conv=conv, seq=first + n, ts=ts, **s) for n, s in enumerate(specs)]
        await conn.run_sync(self.store.insert_events, evs)
        return evs

    async def announce(self, evs: list[Event]) -> None:
        await self.pub.publish_events(evs)
        for ev in evs:
            if ev.user_id:
                await self.pub.notify_membership(ev.user_id, ev)

    async def load(
        self, conn: AsyncConnection, conv: str, user: str, lock: bool = False
    ) -> tuple[Row[Any], Row[Any] | None]:
        """``lock`` for membership changes: read members under the conversation's row lock, so
        concurrent changes (two owners leaving, the same user added twice) are serialised."""
        row = await self.store.get_conversation(conn, conv, lock=lock)
        if row is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
        return row, await self.store.get_member(conn, conv, user)

    async def view(self, conn: AsyncConnection, conv: str, user: str) -> dict[str, Any]:
        row, me = await self.load(conn, conv, user)
        if me is None:
            return conv_view(row, None)
        return conv_view(row, me.role, me.delivered_seq, me.read_seq)

    # --- create --------------------------------------------------------------------------
    async def create(self, user: str, req: CreateConversation) -> dict[str, Any]:
        others = list(dict.fromkeys(m for m in req.members if m != user))
        name: str | None = None
        nkey: str | None = None
        private = True
        if req.kind == "dm":
            if len(others) > 1 or (not others and user not in req.members):
                raise ChatError(ErrorCode.INVALID, "a dm needs exactly one other user")
        elif req.kind == "group":
            if not 2 <= len(others) + 1 <= self.max_group:
                raise ChatError(ErrorCode.INVALID, f"a group has 2 to {self.max_group} users")
        else:
            name = clean_name(req.name)
            nkey = name_key(name)
            private = bool(req.private)
        missing = await self.users.missing(others) if others else []
        if missing:
            raise ChatError(ErrorCode.INVALID, "unknown user ids", extra={"unknown": missing})
        async with self.store.tx() as conn:  # before an existing dm is returned, too
            await check_may_add(conn, user, others, req.kind)
        key = dm_key(user, others[0] if others else user) if req.kind == "dm" else None
        if key is not None:
            existing = await self._existing_dm(key, user)
            if existing is not None:
                return {"conversation": existing, "created": False}
        conv_id = uuid.uuid4().hex
        ts = now_ts()
        creator_role = "member" if req.kind == "dm" else "owner"
        roster = [(user, creator_role)] + [(o, "member") for o in others]
        try:
            async with self.store.tx() as conn:
                await self.store.insert_conversation(
                    conn,
                    {
                        "id": conv_id,
                        "kind": req.kind,
                        "name": name,
                        "private": private,
                        "created_by": user,
                        "created_at": ts,
                        "last_seq": 0,
                        "dm_key": key,
                        "name_key": nkey,
                    },
                )
                await self.store.insert_members(
                    conn,
                    [
                        {
                            "conv_id": conv_id,
                            "user_id": u,
                            "role": r,
                            "joined_at": ts,
                            "delivered_seq": 0,
                            "read_seq": 0,
                        }
                        for u, r in roster
                    ],
                )
                evs = await self.append(
                    conn,
                    conv_id,
                    [{"kind": "member_joined", "sender": user, "user_id": u, "role": r} for u, r in roster],
                )
                view = await self.view(conn, conv_id, user)
        except IntegrityError as exc:
            if nkey is not None:  # the unique index on name_key decides, also under a race
                raise ChatError(ErrorCode.CONFLICT, "a channel with this name exists") from exc
            if key is None:
                raise
            existing = await self._existing_dm(key, user)  # lost a race creating the same dm
            if existing is None:
                raise
            return {"conversation": existing, "created": False}
        await self.announce(evs)
        return {"conversation": view, "created": True}

    async def _existing_dm(self, key: str, user: str) -> dict[str, Any] | None:
        async with self.store.tx() as conn:
            row = await self.store.find_dm(conn, key)
            if row is None:
                return None
            return await self.view(conn, row.id, user)

    # --- reads ---------------------------------------------------------------------------
    async def list_for(self, user: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            rows = await self.store.conversations_of(conn, user)
        return {"conversations": [conv_view(r, r.role, r.delivered_seq, r.read_seq) for r in rows]}

    async def get(self, user: str, conv: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            row, me = await self.load(conn, conv, user)
            perm.check("read", row.kind, bool(row.private), role_of(me), bool(row.archived))
            view = conv_view(row, role_of(me), *((me.delivered_seq, me.read_seq) if me else (0, 0)))
            view["members"] = [{"user_id": m.user_id, "role": m.role} for m in await self.store.members_of(conn, conv)]
        return view

    async def history(self, user: str, q: HistoryQuery) -> dict[str, Any]:
        """A page of events: ONE statement on PostgreSQL, no transaction (``Store.read``)."""
        limit = max(1, min(200, q.limit))
        async with self.store.read() as conn:
            acc, evs, has_more = await history_store.page(conn, q.conv, user, q.before, q.after, limit)
        if acc is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
        if acc.role is None and q.members_only:
            raise perm.hidden()
        perm.check("read", acc.kind, bool(acc.private), acc.role, bool(acc.archived))
        return {"events": evs, "has_more": has_more}

    async def sync(self, user: str, q: SyncQuery) -> dict[str, Any]:
        """Many conversations' missed events in one call (a connection's ``sync``): one
        membership query (with each conversation's last_seq), then the events in groups of
        conversations expected to hold at most ``SYNC_ROWS_PER_QUERY`` of them, one
        statement per group (``history_store.ranges``); a conversation with nothing new is not
        queried. No transaction on PostgreSQL (``Store.read``: each statement of a READ
        COMMITTED transaction would see its own snapshot anyway). The event JSON returned
        stays within ``q.max_bytes``; the conversations not reached are listed in ``rest``."""
        out: list[dict[str, Any]] = []
        left = q.max_bytes
        async with self.store.read() as conn:
            last = await history_store.positions(conn, user, (p.conv for p in q.positions))
            not_found = [p.conv for p in q.positions if p.conv not in last]
            todo = [p for p in q.positions if p.conv in last]
            done = 0
            while done < len(todo):
                group = history_store.sync_group(todo[done:], last, q.per_conv)
                wanted = [(p.conv, p.after) for p in group if last[p.conv] > p.after]
                fetched = await history_store.ranges(conn, wanted, q.per_conv + 1)
                for p in group:
                    done += 1
                    evs = fetched.get(p.conv, [])
                    more = len(evs) > q.per_conv
                    wire = []
                    for w in evs[: q.per_conv]:
                        size = len(orjson.dumps(w)) + 1
                        if size > left:
                            more = True
                            break
                        left -= size
                        wire.append(w)
                    out.append({"conv": p.conv, "events": wire, "has_more": more})
                    if len(wire) < min(len(evs), q.per_conv):  # the bytes ran out: the rest is asked for again
                        return {"convs": out, "not_found": not_found, "rest": [r.conv for r in todo[done:]]}
        return {"convs": out, "not_found": not_found, "rest": []}

    async def events_range(self, q: EventsRange) -> dict[str, Any]:
        async with self.store.read() as conn:
            evs, _ = await history_store.events(conn, q.conv, q.before, q.after, q.limit)
        return {"events": evs}

    async def all_convs(self, q: ConvScan) -> dict[str, Any]:
        async with self.store.tx() as conn:
            rows = await self.store.conv_positions_page(conn, q.after, q.limit)
        convs = [{"id": r.id, "last_seq": int(r.last_seq)} for r in rows]
        return {"convs": convs, "next": convs[-1]["id"] if len(convs) == q.limit else None}

    async def user_convs(self, user: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            rows = await self.store.conv_positions_of(conn, user)
        return {"convs": [{"id": r.id, "last_seq": int(r.last_seq), "role": r.role} for r in rows]}

    async def lookup_send(self, user: str, conv: str, client_msg_id: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            found = await conn.run_sync(self.store.existing_sends, [(conv, user, client_msg_id)])
        if not found:
            raise ChatError(ErrorCode.NOT_FOUND, "no message with that client_msg_id yet")
        return next(iter(found.values())).to_wire()

    # --- membership changes --------------------------------------------------------------
    async def join(self, user: str, conv: str) -> dict[str, Any]:
        async with self.store.tx() as conn:
            row, me = await self.load(conn, conv, user, lock=True)
            if me is not None:
                return {"conversation": await self.view(conn, conv, user), "changed": False}
            err = perm.join_refusal(row.kind, bool(row.private), bool(row.archived))
            if err is not None:
                raise err
            evs = await self._add(conn, conv, user, user, "member")
            view = await self.view(conn, conv, user)
        await self.announce(evs)
        return {"conversation": view, "changed": True}

    async def _add(self, conn: AsyncConnection, conv: str, actor: str, user: str, role: str) -> list[Event]:
        await self.store.insert_members(
            conn,
            [
                {
                    "conv_id": conv,
                    "user_id": user,
                    "role": role,
                    "joined_at": now_ts(),
                    "delivered_seq": 0,
                    "read_seq": 0,
                }
            ],
        )
        return await self.append(
            conn, conv, [{"kind": "member_joined", "sender": actor, "user_id": user, "role": role}]
        )

    async def add_member(self, actor: str, req: AddMember) -> dict[str, Any]:
        role = req.role or "member"
        async with self.store.tx() as conn:
            row, me = await self.load(conn, req.conv, actor, lock=True)
            perm.check("invite", row.kind, bool(row.private), role_of(me), bool(row.archived))
            assert me is not None  # the table lets no non-member invite
            err = perm.add_refusal(me.role, role)
            if err is not None:
                raise err
            if await self.store.get_member(conn, req.conv, req.user_id) is not None:
                return {"conversation": await self.view(conn, req.conv, actor), "changed": False}
            if await self.users.missing([req.user_id]):
                raise ChatError(ErrorCode.INVALID, "unknown user id")
            await check_may_add(conn, actor, [req.user_id], row.kind)
            if row.kind == "group" and len(await self.store.members_of(conn, req.conv)) >= self.max_group:
                raise ChatError(ErrorCode.CONFLICT, f"a group has at most {self.max_group} users")
            evs = await self._add(conn, req.conv, actor, req.user_id, role)
            view = await self.view(conn, req.conv, actor)
        await self.announce(evs)
        return {"conversation": view, "changed": True}

    async def remove_member(self, actor: str, req: MemberRef) -> dict[str, Any]:
        """Removing someone else (``remove`` in the table, outranking the target) or leaving
        (any member, also while archived; not a dm; not the last owner)."""
        async with self.store.tx() as conn:
            row, me = await self.load(conn, req.conv, actor, lock=True)
            kind, private = row.kind, bool(row.private)
            if req.user_id == actor:
                owner = me is not None and me.role == "owner"
                last = owner and await self.store.count_role(conn, req.conv, "owner") <= 1
                err = perm.leave_refusal(kind, private, role_of(me), last)
                target = me
            else:
                perm.check("remove", kind, private, role_of(me), bool(row.archived))
                target = await self.store.get_member(conn, req.conv, req.user_id)
                if target is None:
                    raise ChatError(ErrorCode.NOT_FOUND, "not a member")
                assert me is not None
                err = perm.remove_refusal(me.role, target.role)
            if err is not None:
                raise err
            assert target is not None
            await self.store.delete_member(conn, req.conv, req.user_id)
            evs = await self.append(
                conn,
                req.conv,
                [{"kind": "member_left", "sender": actor, "user_id": req.user_id, "role": target.role}],
            )
        await self.announce(evs)
        return {}

    async def set_role(self, actor: str, req: SetRole) -> dict[str, Any]:
        async with self.store.tx() as conn:
            row, me = await self.load(conn, req.conv, actor, lock=True)
            perm.check("change_roles", row.kind, bool(row.private), role_of(me), bool(row.archived))
            target = await self.store.get_member(conn, req.conv, req.user_id)
            if target is None:
                raise ChatError(ErrorCode.NOT_FOUND, "not a member")
            specs: list[dict[str, Any]] = []
            if req.user_id == actor:
                if req.role != "owner" and await self.store.count_role(conn, req.conv, "owner") <= 1:
                    raise ChatError(ErrorCode.CONFLICT, "the last owner must name a new owner first")
            if target.role != req.role:
                await self.store.set_role(conn, req.conv, req.user_id, req.role)
                specs.append({"kind": "role_changed", "sender": actor, "user_id": req.user_id, "role": req.role})
            if req.role == "owner" and req.user_id != actor:
                await self.store.set_role(conn, req.conv, actor, "admin")
                specs.append({"kind": "role_changed", "sender": actor, "user_id": actor, "role": "admin"})
            evs = await self.append(conn, req.conv, specs) if specs else []
            view = await self.view(conn, req.conv, actor)
        if evs:
            await self.announce(evs)
        return {"conversation": view}
