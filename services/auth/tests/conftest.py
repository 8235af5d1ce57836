from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chat_common.db import make_engine, migrate
from chat_proto.auth_api import UserRevoked
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.main import MIGRATIONS, VERSION_TABLE
from chat_auth.service import AuthService
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore


class FakeClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class RecordingPublisher:
    """Collects published revocations (the NATS publisher is tested over a real server)."""

    def __init__(self) -> None:
        self.events: list[UserRevoked] = []

    async def publish(self, event: UserRevoked) -> None:
        self.events.append(event)


def make_settings(tmp_path: Path, **kw: object) -> AuthSettings:
    return AuthSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        environment="test",
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(tmp_path: Path) -> AuthSettings:
    return make_settings(tmp_path)


@pytest.fixture
async def engine(settings: AuthSettings) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(settings.database_url)
    await migrate(eng, MIGRATIONS, VERSION_TABLE)
    yield eng
    await eng.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> AuthStore:
    return AuthStore(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def service(settings: AuthSettings, store: AuthStore, clock: FakeClock) -> AuthService:
    svc = AuthService(settings, store, clock=clock, sleep=clock.sleep)
    await svc.ensure_signing_key()
    return svc


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def accounts(engine: AsyncEngine, publisher: RecordingPublisher, clock: FakeClock) -> AccountsService:
    return AccountsService(AccountsStore(engine), publisher, clock=clock)
