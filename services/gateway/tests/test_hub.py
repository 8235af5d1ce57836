"""Hub: per-conversation subscriptions ref-counted by local members, seq ordering and gap
fill, membership events from per-user notices, ephemeral frames, and encode-once fanout.
The bus is ``MemoryBus``; the messages service a ``FakeMessages``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from chat_gateway import hub as hub_mod
from chat_gateway.hub import Hub
from chat_gateway.memory_bus import MemoryBus
from chat_proto import subjects
from chat_proto.frames import CLOSE_SLOW_CONSUMER
from fakes import Client, FakeMessages, client, event, eventually, settle
from prometheus_client import REGISTRY


@dataclass
class Env:
    bus: MemoryBus = field(default_factory=MemoryBus)
    messages: FakeMessages = field(default_factory=FakeMessages)
    hubs: list[Hub] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def hub(self, gap_fill_after: float = 0.01, gap_give_up: float = 5.0) -> Hub:
        h = Hub(self.bus, self.messages, gap_fill_after=gap_fill_after, gap_give_up=gap_give_up)
        self.hubs.append(h)
        return h

    async def connect(self, hub: Hub, user: str, **kw: Any) -> Client:
        c = client(user, **kw)
        self.clients.append(c)
        await hub.attach(c.conn)
        return c

    async def event(self, ev: dict[str, Any]) -> None:
        await self.bus.publish(subjects.evt_conv(ev["conv"]), orjson.dumps(ev))

    async def events(self, conv: str, *seqs: int) -> None:
        for s in seqs:
            await self.event(event(conv, s))

    async def notice(self, user: str, ev: dict[str, Any]) -> None:
        await self.bus.publish(subjects.user_notify(user), orjson.dumps({"conv": ev["conv"], "event": ev}))

    async def eph(self, conv: str, frame: dict[str, Any]) -> None:
        await self.bus.publish(subjects.eph_conv(conv), orjson.dumps(frame))

    def subs_of(self, subject: str) -> int:
        return sum(1 for s in self.bus.subs if s.subject == subject)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    e = Env()
    yield e
    for c in e.clients:
        await c.stop()
    for h in e.hubs:
        for state in list(h.convs.values()):
            state.pending.clear()
            if state.gap_task is not None:
                state.gap_task.cancel()
        for t in list(h._tasks):
            t.cancel()
    await settle()
    await e.bus.close()


def evt(conv: str) -> str:
    return subjects.evt_conv(conv)


def eph(conv: str) -> str:
    return subjects.eph_conv(conv)


def gaps(outcome: str) -> float:
    return REGISTRY.get_sample_value("chat_gateway_gaps_total", {"outcome": outcome}) or 0.0


# --- subscriptions ----------------------------------------------------------------------------
async def test_attach_subscribes_each_conversation_once_for_all_local_members(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member"), ("c2", 3, "owner")]}
    hub = env.hub()
    await env.connect(hub, "u1")
    await env.connect(hub, "u1")
    await env.connect(hub, "u2")
    assert env.bus.subjects() == {
        evt("c1"),
        eph("c1"),
        evt("c2"),
        eph("c2"),
        subjects.user_notify("u1"),
        subjects.user_notify("u2"),
    }
    for subject in (evt("c1"), eph("c1"), evt("c2"), subjects.user_notify("u1"), subjects.user_notify("u2")):
        assert env.subs_of(subject) == 1, subject
    assert set(hub.convs) == {"c1", "c2"}
    assert {u: len(cs) for u, cs in hub.convs["c1"].members.items()} == {"u1": 2, "u2": 1}
    assert hub.convs["c2"].last == 3


async def test_detach_of_the_last_local_member_unsubscribes_and_drops_the_state(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")]}
    hub = env.hub()
    changes: list[str] = []
    hub.on_user_change = changes.append
    a, b = await env.connect(hub, "u1"), await env.connect(hub, "u1")
    c = await env.connect(hub, "u2")
    assert changes == ["u1", "u2"]  # first connection of each user only

    await hub.detach(a.conn)
    assert env.subs_of(subjects.user_notify("u1")) == 1  # u1 still has a connection
    assert changes == ["u1", "u2"]
    await hub.detach(b.conn)
    assert subjects.user_notify("u1") not in env.bus.subjects()
    assert changes == ["u1", "u2", "u1"]
    assert {evt("c1"), eph("c1")} <= env.bus.subjects()  # u2 is still a local member
    assert set(hub.convs["c1"].members) == {"u2"}

    await hub.detach(c.conn)
    assert env.bus.subjects() == set()
    assert hub.convs == {} and hub.users == {}
    assert changes == ["u1", "u2", "u1", "u2"]
    # a later event of the dropped conversation reaches nobody (and does not fail)
    await env.events("c1", 1)
    await env.bus.flush()
    assert c.ws.sent == []


async def test_two_connections_attaching_at_once_share_one_user_subscription(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub()
    a, b = client("u1"), client("u1")
    env.clients += [a, b]
    await asyncio.gather(hub.attach(a.conn), hub.attach(b.conn))
    assert env.subs_of(subjects.user_notify("u1")) == 1
    assert env.subs_of(evt("c1")) == 1
    assert hub.users["u1"] == {a.conn, b.conn}


# --- live events: order and at most once --------------------------------------------------------
async def test_an_event_reaches_every_local_connection_once_in_seq_order(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")], "u3": [("c2", 0, "member")]}
    hub = env.hub()
    conns = [await env.connect(hub, "u1"), await env.connect(hub, "u1"), await env.connect(hub, "u2")]
    other = await env.connect(hub, "u3")
    await env.events("c1", 1, 2, 3)
    for c in conns:
        await eventually(lambda c=c: len(c.ws.sent) >= 3)
    await env.events("c2", 1)
    await eventually(lambda: other.seqs() == [1])
    for c in conns:
        assert c.seqs("c1") == [1, 2, 3]
        assert c.ws.frames()[0] == {"type": "event", "event": event("c1", 1)}
    assert other.seqs("c1") == []  # not a member of c1


async def test_duplicates_and_old_seqs_are_ignored(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 5, "member")]}
    hub = env.hub()
    c = await env.connect(hub, "u1")
    await env.events("c1", 3, 5, 6, 6, 4, 7, 6)
    await env.events("c1", 8)
    await eventually(lambda: 8 in c.seqs())
    assert c.seqs() == [6, 7, 8]
    assert hub.convs["c1"].last == 8
    assert env.messages.called("events") == []  # nothing was missing


async def test_out_of_order_events_are_held_until_the_gap_closes(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub(gap_fill_after=5.0)  # the filler never runs within this test
    c = await env.connect(hub, "u1")
    await env.events("c1", 1, 4, 3)
    await env.bus.flush()
    await eventually(lambda: c.seqs() == [1])
    assert sorted(hub.convs["c1"].pending) == [3, 4]
    await settle()
    assert c.seqs() == [1]  # 3 and 4 wait for 2
    await env.events("c1", 2)
    await eventually(lambda: len(c.seqs()) == 4)
    assert c.seqs() == [1, 2, 3, 4]
    assert hub.convs["c1"].pending == {}
    assert env.messages.called("events") == []


async def test_a_gap_is_filled_from_the_messages_service_after_gap_fill_after(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    env.messages.add("c1", 1, 2, 3, 4)
    hub = env.hub(gap_fill_after=0.03, gap_give_up=5.0)
    c = await env.connect(hub, "u1")
    loop = asyncio.get_running_loop()
    await env.events("c1", 1)
    started = loop.time()
    await env.events("c1", 4)
    await eventually(lambda: len(c.seqs()) == 4)
    assert loop.time() - started >= 0.03 * 0.9  # not before gap_fill_after
    assert c.seqs() == [1, 2, 3, 4]
    assert env.messages.called("events") == [("c1", 1, 4)]
    filled = c.ws.frames()[1:3]
    assert filled == [{"type": "event", "event": e} for e in env.messages.log["c1"][1:3]]
    await env.events("c1", 5)  # and live delivery goes on
    await eventually(lambda: c.seqs() == [1, 2, 3, 4, 5])


async def test_a_gap_that_cannot_be_filled_is_skipped_after_gap_give_up(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub(gap_fill_after=0.01, gap_give_up=0.15)  # the log has nothing for 2, 3
    c = await env.connect(hub, "u1")
    skipped = gaps("skipped")
    loop = asyncio.get_running_loop()
    await env.events("c1", 1)
    started = loop.time()
    await env.events("c1", 4, 5)
    await eventually(lambda: c.seqs() == [1, 4, 5])
    assert loop.time() - started >= 0.15 * 0.9  # held until gap_give_up
    assert env.messages.called("events") == [("c1", 1, 4)]  # one attempt to fill it
    assert gaps("skipped") == skipped + 1
    # the skipped seqs arriving late are old now; later events keep coming
    await env.events("c1", 2, 3, 6, 7)
    await eventually(lambda: len(c.seqs()) == 5)
    await env.events("c1", 8)
    await eventually(lambda: len(c.seqs()) == 6)
    assert c.seqs() == [1, 4, 5, 6, 7, 8]
    assert hub.convs["c1"].gap_task is None


async def test_dropping_a_conversation_stops_its_gap_filler(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub(gap_fill_after=5.0, gap_give_up=5.0)
    c = await env.connect(hub, "u1")
    await env.events("c1", 1, 3)  # 3 waits for 2: a filler is scheduled
    await eventually(lambda: c.seqs() == [1])
    state = hub.convs["c1"]
    assert state.gap_task is not None
    await hub.detach(c.conn)  # the last local member: the conversation is dropped
    await settle()
    leaked = state.gap_task
    if leaked is not None:  # clean up before asserting (the leaked task would sleep 5 s)
        state.pending.clear()
        leaked.cancel()
        await settle()
    assert "c1" not in hub.convs
    assert leaked is None, "a dropped conversation still has a gap filler task"


# --- membership -------------------------------------------------------------------------------
async def test_member_joined_notice_subscribes_a_new_conversation_and_catches_up(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub()
    a, b = await env.connect(hub, "u1"), await env.connect(hub, "u1")
    assert "c9" not in hub.convs
    join = event("c9", 5, kind="member_joined", sender="admin", user_id="u1", role="member")
    env.messages.log["c9"] = [join, event("c9", 6), event("c9", 7)]
    await env.notice("u1", join)
    await eventually(lambda: a.seqs("c9") == [5, 6, 7] and b.seqs("c9") == [5, 6, 7])
    assert {evt("c9"), eph("c9")} <= env.bus.subjects()
    assert env.subs_of(evt("c9")) == 1
    assert "c9" in a.conn.convs and "c9" in b.conn.convs
    assert hub.convs["c9"].roles["u1"] == "member"
    assert env.messages.called("events") == [("c9", 5, None)]  # the catch-up after the join
    assert a.ws.frames()[0] == {"type": "event", "event": join}
    # from now on live events come on the conversation's own subject
    await env.events("c9", 8)
    await eventually(lambda: a.seqs("c9") == [5, 6, 7, 8])


async def test_a_notice_other_than_a_join_does_not_subscribe(env: Env) -> None:
    env.messages.convs = {"u1": []}
    hub = env.hub()
    c = await env.connect(hub, "u1")
    await env.notice("u1", event("c9", 4, kind="role_changed", sender="admin", user_id="u1", role="admin"))
    await env.bus.flush()
    await settle()
    assert "c9" not in hub.convs and evt("c9") not in env.bus.subjects()
    assert c.ws.sent == []


async def test_member_joined_on_a_served_conversation_adds_the_users_connections(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 2, "member")], "u2": []}
    hub = env.hub()
    a = await env.connect(hub, "u1")
    b = await env.connect(hub, "u2")
    join = event("c1", 3, kind="member_joined", sender="u1", user_id="u2", role="guest")
    await env.event(join)  # the conversation's subject and u2's notice both bring it
    await env.notice("u2", join)
    await env.events("c1", 4)
    await eventually(lambda: a.seqs() == [3, 4] and b.seqs() == [3, 4])
    await env.bus.flush()
    await settle()
    assert a.seqs() == [3, 4] and b.seqs() == [3, 4]  # once each
    assert hub.convs["c1"].roles == {"u1": "member", "u2": "guest"}
    assert "c1" in b.conn.convs


async def test_member_left_is_delivered_to_the_leaver_then_removes_them(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")]}
    hub = env.hub()
    stay = await env.connect(hub, "u1")
    leave1, leave2 = await env.connect(hub, "u2"), await env.connect(hub, "u2")
    await env.events("c1", 1)
    await env.event(event("c1", 2, kind="member_left", sender="u2", user_id="u2"))
    await env.events("c1", 3)
    await eventually(lambda: stay.seqs() == [1, 2, 3])
    await env.bus.flush()
    for c in (leave1, leave2):
        assert c.seqs() == [1, 2]  # their own member_left, then nothing more
        assert c.ws.frames()[-1]["event"]["kind"] == "member_left"
        assert "c1" not in c.conn.convs
    assert set(hub.convs["c1"].members) == {"u1"}
    assert "u2" not in hub.convs["c1"].roles
    assert subjects.user_notify("u2") in env.bus.subjects()  # still connected


async def test_the_last_local_member_leaving_unsubscribes_the_conversation(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member"), ("c2", 0, "member")]}
    hub = env.hub()
    c = await env.connect(hub, "u1")
    await env.event(event("c1", 1, kind="member_left", sender="u1", user_id="u1"))
    await eventually(lambda: "c1" not in hub.convs and evt("c1") not in env.bus.subjects())
    assert c.seqs("c1") == [1]
    assert eph("c1") not in env.bus.subjects()
    assert {evt("c2"), subjects.user_notify("u1")} <= env.bus.subjects()
    assert c.conn.convs == {"c2"}


async def test_roles_follow_user_convs_and_role_changes(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "guest")]}
    hub = env.hub()
    c = await env.connect(hub, "u1")
    assert hub.convs["c1"].roles == {"u1": "guest"}
    await env.event(event("c1", 1, kind="role_changed", sender="admin", user_id="u1", role="admin"))
    await eventually(lambda: c.seqs() == [1])
    assert hub.convs["c1"].roles == {"u1": "admin"}


# --- ephemeral frames -------------------------------------------------------------------------
def typing(conv: str, user: str) -> dict[str, Any]:
    return {"type": "typing", "conv": conv, "user_id": user, "expires_in_ms": 5000}


def receipt(conv: str, user: str, seq: int) -> dict[str, Any]:
    return {"type": "receipt", "conv": conv, "user_id": user, "delivered_seq": seq, "read_seq": seq}


async def test_typing_goes_to_other_members_only(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")]}
    hub = env.hub()
    a1, a2 = await env.connect(hub, "u1"), await env.connect(hub, "u1")
    b = await env.connect(hub, "u2")
    await env.eph("c1", typing("c1", "u1"))
    await env.eph("c1", receipt("c1", "u2", 1))  # a marker behind it (same subject: in order)
    for c in (a1, a2, b):
        await eventually(lambda c=c: "receipt" in c.ws.kinds())
    assert b.ws.frames() == [typing("c1", "u1"), receipt("c1", "u2", 1)]
    assert a1.ws.kinds() == a2.ws.kinds() == ["receipt"]


async def test_receipts_go_to_everyone_including_the_authors_connections(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")]}
    hub = env.hub()
    conns = [await env.connect(hub, "u1"), await env.connect(hub, "u1"), await env.connect(hub, "u2")]
    await env.eph("c1", receipt("c1", "u1", 3))
    for c in conns:
        await eventually(lambda c=c: len(c.ws.sent) == 1)
        assert c.ws.frames() == [receipt("c1", "u1", 3)]


async def test_ephemeral_frames_of_unknown_type_are_not_relayed(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub()
    c = await env.connect(hub, "u1")
    await env.eph("c1", {"type": "auth_ok", "user_id": "u2"})
    await env.bus.publish(eph("c1"), b"not json")
    await env.eph("c1", receipt("c1", "u2", 1))
    await eventually(lambda: len(c.ws.sent) == 1)
    await env.bus.flush()
    await settle()
    assert c.ws.frames() == [receipt("c1", "u2", 1)]


async def test_presence_goes_to_others_once_per_status(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")]}
    hub = env.hub()
    a, b = await env.connect(hub, "u1"), await env.connect(hub, "u2")
    online = {"type": "presence", "user_id": "u1", "status": "online", "last_seen": None}
    offline = {"type": "presence", "user_id": "u1", "status": "offline", "last_seen": "2024-01-01T00:00:00.000Z"}
    for frame in (online, online, offline):
        await env.eph("c1", frame)
    await env.eph("c1", receipt("c1", "u2", 1))  # a marker behind them
    await eventually(lambda: "receipt" in a.ws.kinds() and "receipt" in b.ws.kinds())
    assert b.ws.frames() == [online, offline, receipt("c1", "u2", 1)]
    assert a.ws.kinds() == ["receipt"]


async def test_typing_to_a_full_queue_is_dropped_but_a_receipt_closes_4009(env: Env) -> None:
    env.messages.convs = {"u1": [("c1", 0, "member")], "u2": [("c1", 0, "member")]}
    hub = env.hub()
    author = await env.connect(hub, "u1")
    slow = await env.connect(hub, "u2", max_frames=1, run=False)  # its writer is not running
    await env.events("c1", 1)
    await eventually(lambda: author.seqs() == [1])
    await env.eph("c1", typing("c1", "u1"))
    await env.bus.flush()
    assert slow.conn._close is None  # dropped, not a slow-consumer close
    assert slow.conn.info()["queued"] == 1
    await env.eph("c1", receipt("c1", "u1", 1))  # a receipt is not droppable
    await env.bus.flush()
    assert slow.conn._close == (CLOSE_SLOW_CONSUMER, "slow consumer")
    slow.start()
    await eventually(lambda: slow.ws.closed)
    assert slow.ws.kinds() == ["event:c1:1"]
    assert slow.ws.close_code == CLOSE_SLOW_CONSUMER
    # the author, with room, got everything but its own typing
    await eventually(lambda: len(author.ws.sent) == 2)
    assert author.ws.kinds() == ["event:c1:1", "receipt"]


# --- encode once ------------------------------------------------------------------------------
async def test_one_event_is_encoded_once_for_all_local_connections(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[str] = []
    real = hub_mod.event_frame_from_event_json

    def counting(raw: bytes) -> str:
        text = real(raw)
        encoded.append(text)
        return text

    monkeypatch.setattr(hub_mod, "event_frame_from_event_json", counting)
    users = ["u1", "u2", "u3", "u4"]
    env.messages.convs = {u: [("c1", 0, "member")] for u in users}
    hub = env.hub()
    conns = [await env.connect(hub, u) for u in users for _ in range(2)]  # 8 connections
    ev = event("c1", 1, body="once")
    await env.event(ev)
    for c in conns:
        await eventually(lambda c=c: len(c.ws.sent) == 1)
    assert len(encoded) == 1
    first = encoded[0]
    assert orjson.loads(first) == {"type": "event", "event": ev}
    for c in conns:
        assert c.ws.sent[0] == first
        assert c.ws.sent[0] is first  # the very same string object went to every socket
    await env.events("c1", 2)
    for c in conns:
        await eventually(lambda c=c: len(c.ws.sent) == 2)
    assert len(encoded) == 2  # one more event: one more encoding, not 8


async def test_an_event_with_attachments_is_encoded_once_per_reader(env: Env) -> None:
    env.messages.convs = {u: [("c1", 0, "member")] for u in ("u1", "u2")}
    hub = env.hub()
    hub.personalize = lambda ev, user: {**ev, "attachments": [{**a, "url": f"/m?u={user}"} for a in ev["attachments"]]}
    a1, a2, b = await env.connect(hub, "u1"), await env.connect(hub, "u1"), await env.connect(hub, "u2")
    ev = event("c1", 1, attachments=[{"media_id": "m1", "mime": "image/png", "size": 3}])
    await env.event(ev)
    for c in (a1, a2, b):
        await eventually(lambda c=c: len(c.ws.sent) == 1)
    assert a1.ws.sent[0] is a2.ws.sent[0]  # one text per reader, shared by their connections
    assert a1.ws.frames()[0]["event"]["attachments"][0]["url"] == "/m?u=u1"
    assert b.ws.frames()[0]["event"]["attachments"][0]["url"] == "/m?u=u2"
    await env.events("c1", 2)  # no attachments: the shared text again
    for c in (a1, a2, b):
        await eventually(lambda c=c: len(c.ws.sent) == 2)
    assert a1.ws.sent[1] is b.ws.sent[1]


async def test_deliver_delay_is_observed_from_the_events_commit_time(env: Env) -> None:
    """chat_gateway_deliver_delay_seconds: the event's ts (its commit) to its frames queued
    here; an event nobody local receives is not observed."""
    from datetime import UTC, datetime, timedelta

    from chat_proto.timefmt import format_ts

    def count() -> float:
        return REGISTRY.get_sample_value("chat_gateway_deliver_delay_seconds_count") or 0.0

    def slow() -> float:  # observations above 1 s
        total = REGISTRY.get_sample_value("chat_gateway_deliver_delay_seconds_count") or 0.0
        within = REGISTRY.get_sample_value("chat_gateway_deliver_delay_seconds_bucket", {"le": "1.0"}) or 0.0
        return total - within

    env.messages.convs = {"u1": [("c1", 0, "member")]}
    hub = env.hub()
    c = await env.connect(hub, "u1")
    before, slow_before = count(), slow()
    late = {**event("c1", 1), "ts": format_ts(datetime.now(UTC) - timedelta(seconds=3))}
    await env.event(late)
    await env.event({**event("c1", 2), "ts": format_ts(datetime.now(UTC))})
    await eventually(lambda: c.seqs("c1") == [1, 2])
    assert count() - before == 2
    assert slow() - slow_before == 1  # the one committed 3 s ago
