"""Presence rules over a real SQLite store: frames per conversation, durable last_seen,
queries scoped to users sharing a conversation, warm-up answers, retry when messages is down."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chat_common.db import make_engine, migrate
from chat_presence.main import MIGRATIONS
from chat_presence.service import PresenceService
from chat_presence.state import PresenceState
from chat_presence.store import LastSeenStore
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.presence import GatewayReport


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Fanout:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, object]]] = []

    async def publish(self, conv: str, frame: bytes) -> None:
        self.sent.append((conv, json.loads(frame)))


class Directory:
    def __init__(self) -> None:
        self.convs = {"bob": ["dm-ab", "grp"], "alice": ["dm-ab", "grp"], "carol": ["grp"]}
        self.shares = {"alice": {"alice", "bob", "carol"}, "eve": {"eve"}}
        self.down = False

    async def presence_convs(self, users: list[str]) -> dict[str, list[str]]:
        if self.down:
            raise ChatError(ErrorCode.UNAVAILABLE)
        return {u: self.convs.get(u, []) for u in users}

    async def shared_with(self, user: str, others: list[str]) -> list[str]:
        return [u for u in others if u in self.shares.get(user, {user})]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LastSeenStore]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/presence.db")
    await migrate(engine, MIGRATIONS, "alembic_version_presence")
    yield LastSeenStore(engine)
    await engine.dispose()


def make(store: LastSeenStore, clock: Clock, directory: Directory | None = None) -> tuple[PresenceService, Fanout]:
    fanout = Fanout()
    state = PresenceState(now=clock(), grace_s=3.0, dead_after=2.5, warmup_s=6.0)
    svc = PresenceService(
        state, fanout, directory or Directory(), store, clock=clock, coalesce_s=0.25, persist_interval_s=30.0
    )
    return svc, fanout


def delta(users: list[str] = [], gone: list[str] = [], ts: str = "2026-01-01T00:00:01.000Z") -> GatewayReport:  # noqa: B006
    return GatewayReport(gateway_id="g1", kind="delta", interval_s=5.0, ts=ts, users=users, gone=gone)


async def test_a_change_is_one_frame_per_conversation_and_last_seen_is_durable(store: LastSeenStore) -> None:
    clock = Clock()
    svc, fanout = make(store, clock)
    svc.on_report(delta(["bob"]))
    await svc.step()
    assert fanout.sent == [
        (conv, {"type": "presence", "user_id": "bob", "status": "online", "last_seen": "2026-01-01T00:00:01.000Z"})
        for conv in ("dm-ab", "grp")
    ]
    clock.t = 10.0
    svc.on_report(delta(gone=["bob"], ts="2026-01-01T00:00:10.000Z"))
    clock.t = 13.0
    await svc.step()
    assert [(f["status"], f["last_seen"]) for _, f in fanout.sent[2:]] == [("offline", "2026-01-01T00:00:10.000Z")] * 2
    assert await store.get(["bob"]) == {"bob": ("2026-01-01T00:00:10.000Z", False)}
    out = await svc.query("alice", ["bob", "carol", "eve", "bob"])
    assert [e.model_dump() for e in out["presence"]] == [
        {"user_id": "bob", "status": "offline", "last_seen": "2026-01-01T00:00:10.000Z"},
        {"user_id": "carol", "status": "offline", "last_seen": None},
    ]
    # a stranger learns nothing about bob
    assert (await svc.query("eve", ["bob"]))["presence"] == []


async def test_changes_wait_while_messages_is_down(store: LastSeenStore) -> None:
    clock, directory = Clock(), Directory()
    directory.down = True
    svc, fanout = make(store, clock, directory)
    svc.on_report(delta(["bob"]))
    await svc.step()
    assert fanout.sent == []
    directory.down = False
    await svc.step()
    assert [(c, f["status"]) for c, f in fanout.sent] == [("dm-ab", "online"), ("grp", "online")]


async def test_fresh_replica_answers_from_the_store_and_offlines_stale_users_after_warm_up(
    store: LastSeenStore,
) -> None:
    await store.save([("bob", "2026-01-01T00:00:01.000Z", True), ("carol", "2026-01-01T00:00:02.000Z", True)])
    clock = Clock()
    svc, fanout = make(store, clock)
    svc.on_report(
        GatewayReport(gateway_id="g1", kind="full", interval_s=5.0, ts="2026-01-01T00:01:00.000Z", users=["bob"])
    )
    await svc.step()
    got = {e.user_id: e.status for e in (await svc.query("alice", ["bob", "carol"]))["presence"]}
    assert got == {"bob": "online", "carol": "online"}  # carol: no evidence yet
    assert fanout.sent == []  # bob is the baseline: no frame
    clock.t = 6.0
    await svc.step()
    assert [(c, f["user_id"], f["status"]) for c, f in fanout.sent] == [("grp", "carol", "offline")]
    got = {e.user_id: e.status for e in (await svc.query("alice", ["bob", "carol"]))["presence"]}
    assert got == {"bob": "online", "carol": "offline"}


async def test_last_seen_never_goes_back_in_time(store: LastSeenStore) -> None:
    await store.save([("bob", "2026-01-01T00:00:05.000Z", False)])
    await store.save([("bob", "2026-01-01T00:00:04.000Z", True)])  # a late write of an older state
    assert await store.get(["bob"]) == {"bob": ("2026-01-01T00:00:05.000Z", False)}
    await store.save([("bob", "2026-01-01T00:00:06.000Z", True)])
    assert await store.marked_online() == {"bob": "2026-01-01T00:00:06.000Z"}


async def test_a_change_is_durable_before_it_is_announced(store: LastSeenStore) -> None:
    """A replica killed right after a client saw "bob online" must not come back calling bob
    offline: the store holds every change a frame announced, at the moment it is published."""
    clock = Clock()
    seen_in_store: list[dict[str, tuple[str, bool]]] = []

    class CheckingFanout(Fanout):
        async def publish(self, conv: str, frame: bytes) -> None:
            seen_in_store.append(await store.get(["bob"]))
            await super().publish(conv, frame)

    state = PresenceState(now=clock(), grace_s=3.0, dead_after=2.5, warmup_s=6.0)
    svc = PresenceService(
        state, CheckingFanout(), Directory(), store, clock=clock, coalesce_s=0.25, persist_interval_s=30.0
    )
    svc.on_report(delta(["bob"]))
    await svc.step()
    assert seen_in_store == [{"bob": ("2026-01-01T00:00:01.000Z", True)}] * 2
