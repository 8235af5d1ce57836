from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chat_common.db import make_engine, migrate
from chat_messages.channels import Channels
from chat_messages.conversations import Conversations
from chat_messages.main import MIGRATIONS
from chat_messages.store import Store
from chat_proto.events import Event


class RecordingPublisher:
    """The Publisher port, recording what would go on the bus."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.notices: list[tuple[str, Event]] = []

    async def publish_events(self, events: list[Event]) -> None:
        self.events.extend(events)

    async def notify_membership(self, user: str, event: Event) -> None:
        self.notices.append((user, event))


class Directory:
    def __init__(self, known: set[str]) -> None:
        self.known = known

    async def missing(self, user_ids: list[str]) -> list[str]:
        return [u for u in user_ids if u not in self.known]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/messages.db")
    await migrate(engine, MIGRATIONS, "alembic_version_messages")
    yield Store(engine)
    await engine.dispose()


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def convs(store: Store, publisher: RecordingPublisher) -> Conversations:
    known = {"alice", "bob", "carol", "dave", "erin"} | {f"u{i}" for i in range(20)}
    return Conversations(store, publisher, Directory(known))


@pytest.fixture
def channels(convs: Conversations) -> Channels:
    return Channels(convs)
