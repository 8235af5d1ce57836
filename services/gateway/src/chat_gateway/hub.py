"""Fanout hub: per-conversation bus subscriptions reference-counted by local members.

Each conversation this gateway serves has one subscription and one sequencer: events
are delivered to local members in seq order, each once; an event ahead of a missing
seq is held, the gap is filled from the messages service, and after ``gap_give_up_s``
delivery moves on. Membership events change the local member set as they are
delivered: a joining user's connections are added before their ``member_joined``, a
leaving user's removed after their ``member_left``. Per-user notices (on
``chat.notify.user.<id>``) bring the membership events of conversations this gateway
is not yet subscribed to. Ephemeral frames (receipts, typing, presence;
``chat_proto.ephemeral``) come on a second per-conversation subscription and go to the
same local members, with no sequencing (presence: ``presence_relay.py``). The hub also
keeps the local members' roles per conversation (from ``internal.user_convs`` and the
membership events it delivers) and tells presence when a user's first connection attaches
or their last one detaches (``on_user_change``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from chat_proto import ephemeral, subjects
from chat_proto.errors import ChatError
from chat_proto.frames import encode, event_frame_from_event_json
from prometheus_client import Counter, Gauge, Histogram

from chat_gateway.connection import Connection
from chat_gateway.ports import Bus, BusMessage, MessagesApi, Subscription
from chat_gateway.presence_relay import relay_presence
from chat_gateway.wire import OutFrame

log = logging.getLogger("chat.gateway.hub")

SUBSCRIBED = Gauge("chat_gateway_conversations", "Conversations with a local subscription")
DELIVERIES = Counter("chat_gateway_event_deliveries_total", "Event frames queued to connections")
GAPS = Counter("chat_gateway_gaps_total", "Sequence gaps seen", ["outcome"])
EPHEMERAL = Counter("chat_gateway_ephemeral_deliveries_total", "Receipt/typing frames queued", ["type"])
# The last hop of send -> deliver: the event's commit (its ts, set by messages in the write
# transaction; wall clocks of two hosts) to its frames queued to this gateway's connections.
DELIVER_DELAY = Histogram(
    "chat_gateway_deliver_delay_seconds",
    "Event committed (its ts) -> its frames queued to local connections (gap fills included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _since(ts: object) -> float | None:
    """Seconds since an event's ``ts`` (RFC 3339, ``…Z``); None when it is not one."""
    if not isinstance(ts, str):
        return None
    try:
        stamp = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return max(0.0, time.time() - stamp)


class ConvState:
    def __init__(self, hub: Hub, conv: str, last: int) -> None:
        self.hub = hub
        self.conv = conv
        self.last = last
        self.members: dict[str, set[Connection]] = {}
        # local members' roles (typing: guests may not)
        self.roles: dict[str, str] = {}
        self.sub: Subscription | None = None
        self.eph_sub: Subscription | None = None
        self.pending: dict[int, tuple[dict[str, Any], bytes]] = {}
        self.gap_task: asyncio.Task[None] | None = None

    def empty(self) -> bool:
        return not self.members

    def feed(self, ev: dict[str, Any], raw: bytes) -> None:
        seq = ev["seq"]
        if seq <= self.last:
            return
        if seq == self.last + 1:
            self._deliver(ev, raw)
            self._drain()
        else:
            self.pending[seq] = (ev, raw)
            if self.gap_task is None:
                self.gap_task = asyncio.create_task(self._fill_gap())

    def _drain(self) -> None:
        while self.last + 1 in self.pending:
            ev, raw = self.pending.pop(self.last + 1)
            self._deliver(ev, raw)

    def _deliver(self, ev: dict[str, Any], raw: bytes) -> None:
        self.last = ev["seq"]
        kind = ev.get("kind")
        if kind == "member_joined":
            self.hub._add_user_locally(self, ev.get("user_id") or "")
        if kind in ("member_joined", "role_changed") and ev.get("user_id") in self.members:
            self.roles[ev["user_id"]] = str(ev.get("role") or "member")
        n = 0
        personalize = self.hub.personalize
        if personalize is not None and ev.get("attachments"):
            # Media URLs are signed for each reader (media_urls.py): one encode per user.
            for user, conns in self.members.items():
                mine = OutFrame(encode({"type": "event", "event": personalize(ev, user)}))
                for c in conns:
                    c.push_event(self.conv, self.last, mine)
                    n += 1
        else:
            # Encoded once, text and wire bytes; the same bytes go to every local recipient.
            frame = OutFrame(event_frame_from_event_json(raw))
            conv, seq = self.conv, self.last
            for conns in self.members.values():
                for c in conns:
                    c.push_event(conv, seq, frame)
                n += len(conns)
        DELIVERIES.inc(n)
        if n and (delay := _since(ev.get("ts"))) is not None:
            DELIVER_DELAY.observe(delay)
        if kind == "member_left":
            self.hub._remove_user_locally(self, ev.get("user_id") or "")

    async def _fill_gap(self) -> None:
        hub = self.hub
        try:
            await asyncio.sleep(hub.gap_fill_after)
            if self.pending and min(self.pending) > self.last + 1:
                try:
                    res = await hub.messages.events(self.conv, self.last, min(self.pending))
                    for model in res.events:
                        ev = model.wire()
                        self.feed(ev, orjson.dumps(ev))
                    GAPS.labels("filled").inc()
                except ChatError:
                    pass
            if self.pending and min(self.pending) > self.last + 1:
                await asyncio.sleep(max(0.0, hub.gap_give_up - hub.gap_fill_after))
            if self.pending and min(self.pending) > self.last + 1:
                GAPS.labels("skipped").inc()
                self.last = min(self.pending) - 1
            self._drain()
        finally:
            self.gap_task = None
            # Still a gap ahead, and still served here (a dropped conversation's filler ends).
            if self.pending and hub.convs.get(self.conv) is self:
                self.gap_task = asyncio.create_task(self._fill_gap())


class Hub:
    def __init__(self, bus: Bus, messages: MessagesApi, gap_fill_after: float, gap_give_up: float) -> None:
        self.bus = bus
        self.messages = messages
        self.gap_fill_after = gap_fill_after
        self.gap_give_up = gap_give_up
        self.convs: dict[str, ConvState] = {}
        self.users: dict[str, set[Connection]] = {}
        self._user_subs: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribing: set[str] = set()
        # Called with a user whose first connection attached or last one detached (presence).
        self.on_user_change: Callable[[str], None] | None = None
        # An event with attachments as one reader gets it (signed media URLs), or None.
        self.personalize: Callable[[dict[str, Any], str], dict[str, Any]] | None = None

    # --- connections ---------------------------------------------------------------------
    async def attach(self, conn: Connection) -> None:
        user = conn.user
        first = user not in self.users
        conns = self.users.setdefault(user, set())
        conns.add(conn)
        if first and self.on_user_change is not None:
            self.on_user_change(user)
        if user not in self._user_subs and user not in self._subscribing:
            # Two connections of one user attaching at once must not both subscribe.
            self._subscribing.add(user)
            try:
                self._user_subs[user] = await self.bus.subscribe(subjects.user_notify(user), self._on_notice)
            finally:
                self._subscribing.discard(user)
        res = await self.messages.user_convs(user)
        for item in res.convs:
            state = await self._state(item.id, item.last_seq)
            state.members.setdefault(user, set()).add(conn)
            state.roles[user] = item.role or "member"
            # Live from the seq the store reported: anything at or below it is history.
            conn.start_live(state.conv, item.last_seq)

    async def detach(self, conn: Connection) -> None:
        user = conn.user
        for conv in list(conn.convs):
            state = self.convs.get(conv)
            if state is None:
                continue
            conns = state.members.get(user)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del state.members[user]
                    state.roles.pop(user, None)
            await self._maybe_drop(state)
        conn.convs.clear()
        conns = self.users.get(user)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.users[user]
                if self.on_user_change is not None:
                    self.on_user_change(user)
                sub = self._user_subs.pop(user, None)
                if sub is not None:
                    await _unsubscribe(sub)

    # --- conversation states -------------------------------------------------------------
    async def _state(self, conv: str, last: int) -> ConvState:
        state = self.convs.get(conv)
        if state is None:
            state = ConvState(self, conv, last)
            self.convs[conv] = state
            state.sub = await self.bus.subscribe(subjects.evt_conv(conv), self._on_event)
            state.eph_sub = await self.bus.subscribe(subjects.eph_conv(conv), self._on_ephemeral)
            SUBSCRIBED.set(len(self.convs))
        return state

    async def _maybe_drop(self, state: ConvState) -> None:
        if state.empty() and self.convs.get(state.conv) is state:
            del self.convs[state.conv]
            SUBSCRIBED.set(len(self.convs))
            if state.gap_task:
                state.gap_task.cancel()
            for sub in (state.sub, state.eph_sub):
                if sub is not None:
                    await _unsubscribe(sub)

    def _add_user_locally(self, state: ConvState, user: str) -> None:
        for c in self.users.get(user, ()):
            if state.conv not in c.convs:
                state.members.setdefault(user, set()).add(c)
                c.start_live(state.conv, state.last - 1)  # from their own member_joined on

    def _remove_user_locally(self, state: ConvState, user: str) -> None:
        state.roles.pop(user, None)
        for c in state.members.pop(user, set()):
            c.stop_live(state.conv)
        if state.empty():
            task = asyncio.create_task(self._maybe_drop(state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # --- bus callbacks -------------------------------------------------------------------
    async def _on_event(self, msg: BusMessage) -> None:
        state = self.convs.get(subjects.conv_from_evt_subject(msg.subject))
        if state is None:
            return
        try:
            ev = orjson.loads(msg.data)
            if not isinstance(ev["seq"], int):
                raise TypeError("seq")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("undecodable event", extra={"subject": msg.subject})
            return
        state.feed(ev, msg.data)

    async def _on_ephemeral(self, msg: BusMessage) -> None:
        state = self.convs.get(subjects.conv_from_evt_subject(msg.subject))
        if state is None:
            return
        try:
            frame = orjson.loads(msg.data)
            kind, author = frame["type"], frame.get("user_id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if kind not in ephemeral.RELAYED:
            return
        text = OutFrame(msg.data.decode())  # once for every recipient
        if kind == "presence":
            EPHEMERAL.labels(kind).inc(relay_presence(state.members, author, frame.get("status"), text))
            return
        others_only = kind in ephemeral.OTHERS_ONLY
        droppable = kind in ephemeral.DROPPABLE
        n = 0
        for user, conns in state.members.items():
            if others_only and user == author:
                continue
            for c in conns:
                c.push_live(text, droppable=droppable)
                n += 1
        EPHEMERAL.labels(kind).inc(n)

    async def _on_notice(self, msg: BusMessage) -> None:
        try:
            notice = orjson.loads(msg.data)
            ev, conv = notice["event"], notice["conv"]
            user = msg.subject.rsplit(".", 1)[-1]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if user not in self.users:
            return
        state = self.convs.get(conv)
        if state is None:
            if ev.get("kind") != "member_joined":
                return
            state = await self._state(conv, int(ev["seq"]) - 1)
            state.feed(ev, orjson.dumps(ev))
            # Events published between the join and our new subscription would otherwise
            # wait for the next live event to reveal the gap: catch up once now.
            task = asyncio.create_task(self._catch_up(state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        state.feed(ev, orjson.dumps(ev))

    async def _catch_up(self, state: ConvState) -> None:
        try:
            res = await self.messages.events(state.conv, state.last)
        except ChatError:
            return
        for model in res.events:
            e = model.wire()
            state.feed(e, orjson.dumps(e))


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception:
        pass
