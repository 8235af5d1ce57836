"""SQL for the auth service. Each public method is one transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, case, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chat_auth.models import AdminBootstrap, LoginThrottle, RefreshFamily, RefreshToken, SigningKey, User


class UsernameTaken(Exception):
    pass


@dataclass(frozen=True)
class RefreshRow:
    token: RefreshToken
    family: RefreshFamily
    user: User


class AuthStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        # On SQLite the engine itself lends its one connection to one transaction at a
        # time (chat_common.db.make_engine), so no lock is needed here.
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        try:
            await self.check()
            return True
        except Exception:
            return False

    async def check(self) -> None:
        """Raises when the database cannot be reached."""
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # --- users -------------------------------------------------------------

    async def create_user(
        self,
        user_id: str,
        username: str,
        display_name: str,
        password_hash: str,
        now: datetime,
        claim_admin: bool = True,
    ) -> User:
        """Insert a user; with ``claim_admin`` the first user ever is an admin (the bootstrap
        row is claimed in the same transaction). Raises UsernameTaken."""
        try:
            async with self._tx() as s:
                if (await s.scalar(select(User.id).where(User.username == username))) is not None:
                    raise UsernameTaken(username)
                user = User(
                    id=user_id,
                    username=username,
                    display_name=display_name,
                    password_hash=password_hash,
                    created_at=now,
                    is_admin=False,
                )
                s.add(user)
                await s.flush()
                user.is_admin = claim_admin and await claim_first_admin(s, user_id, now)
            return user
        except IntegrityError as exc:  # lost a race with a concurrent registration
            raise UsernameTaken(username) from exc

    async def bootstrapped(self) -> bool:
        async with self._tx() as s:
            return await s.scalar(select(AdminBootstrap.id)) is not None

    async def user_by_username(self, username: str) -> User | None:
        async with self._tx() as s:
            return await s.scalar(select(User).where(User.username == username))

    async def user_by_id(self, user_id: str) -> User | None:
        async with self._tx() as s:
            return await s.get(User, user_id)

    async def existing_active_ids(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        async with self._tx() as s:
            rows = await s.scalars(select(User.id).where(User.id.in_(set(user_ids)), User.deactivated_at.is_(None)))
            return set(rows)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self._tx() as s:
            await s.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))

    # --- login throttle ----------------------------------------------------

    async def throttle_locked_until(self, username: str, client: str) -> datetime | None:
        async with self._tx() as s:
            return await s.scalar(select(LoginThrottle.locked_until).where(*_throttle_key(username, client)))

    async def record_failure(
        self,
        username: str,
        client: str,
        now: datetime,
        window_start_after: datetime,
        max_failures: int,
        lockout_for: Callable[[int], timedelta],
    ) -> datetime | None:
        """Count one failed login; lock when the window holds ``max_failures``.

        ``lockout_for(n)`` gives the lock duration (timedelta) of the n-th lockout.
        Returns the new ``locked_until`` when this failure locked the account.
        """
        async with self._tx() as s:
            stale = LoginThrottle.window_start < window_start_after
            res: CursorResult[Any] = await s.execute(  # type: ignore[assignment]
                update(LoginThrottle)
                .where(*_throttle_key(username, client))
                .values(
                    failures=case((stale, 1), else_=LoginThrottle.failures + 1),
                    window_start=case((stale, now), else_=LoginThrottle.window_start),
                )
            )
            if res.rowcount == 0:
                try:
                    async with s.begin_nested():
                        s.add(
                            LoginThrottle(
                                username=username,
                                client=client,
                                failures=1,
                                window_start=now,
                                lockouts=0,
                                locked_until=None,
                            )
                        )
                except IntegrityError:  # concurrent first failure: count ours too
                    await s.execute(
                        update(LoginThrottle)
                        .where(*_throttle_key(username, client))
                        .values(failures=LoginThrottle.failures + 1)
                    )
            row = await s.scalar(select(LoginThrottle).where(*_throttle_key(username, client)))
            assert row is not None
            if row.failures < max_failures:
                return None
            row.lockouts += 1
            row.failures = 0
            row.window_start = now
            row.locked_until = now + lockout_for(row.lockouts)
            return row.locked_until

    async def reset_throttle(self, username: str, client: str) -> None:
        async with self._tx() as s:
            row = await s.get(LoginThrottle, (username, client))
            if row is not None:
                await s.delete(row)

    # --- refresh tokens ----------------------------------------------------

    async def create_family(
        self,
        family_id: str,
        user_id: str,
        token_id: str,
        secret_hash: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        async with self._tx() as s:
            s.add(RefreshFamily(id=family_id, user_id=user_id, created_at=now))
            await s.flush()
            s.add(
                RefreshToken(
                    id=token_id, family_id=family_id, secret_hash=secret_hash, created_at=now, expires_at=expires_at
                )
            )

    async def get_refresh(self, token_id: str) -> RefreshRow | None:
        async with self._tx() as s:
            row = (
                await s.execute(
                    select(RefreshToken, RefreshFamily, User)
                    .join(RefreshFamily, RefreshFamily.id == RefreshToken.family_id)
                    .join(User, User.id == RefreshFamily.user_id)
                    .where(RefreshToken.id == token_id)
                )
            ).one_or_none()
            return None if row is None else RefreshRow(row[0], row[1], row[2])

    async def rotate(
        self,
        old_token_id: str,
        new_token_id: str,
        secret_hash: str,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        """Spend ``old_token_id`` and add its successor, atomically.

        The spend is a conditional UPDATE: of two concurrent rotations of the same
        token exactly one sees rowcount 1. False means it was already spent (or its
        family was revoked meanwhile).
        """
        async with self._tx() as s:
            res: CursorResult[Any] = await s.execute(  # type: ignore[assignment]
                update(RefreshToken)
                .where(
                    RefreshToken.id == old_token_id,
                    RefreshToken.spent_at.is_(None),
                    RefreshToken.family_id.in_(select(RefreshFamily.id).where(RefreshFamily.revoked_at.is_(None))),
                )
                .values(spent_at=now)
            )
            if res.rowcount != 1:
                return False
            family_id = await s.scalar(select(RefreshToken.family_id).where(RefreshToken.id == old_token_id))
            s.add(
                RefreshToken(
                    id=new_token_id, family_id=family_id, secret_hash=secret_hash, created_at=now, expires_at=expires_at
                )
            )
            return True

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        async with self._tx() as s:
            await s.execute(
                update(RefreshFamily)
                .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    # --- signing keys ------------------------------------------------------

    async def active_keys(self) -> list[SigningKey]:
        async with self._tx() as s:
            rows = await s.scalars(
                select(SigningKey).where(SigningKey.active.is_(True)).order_by(SigningKey.generation)
            )
            return list(rows)

    async def deactivate_keys(self, kids: list[str]) -> None:
        """Unpublish these keys (tokens they signed stop verifying)."""
        if not kids:
            return
        async with self._tx() as s:
            await s.execute(update(SigningKey).where(SigningKey.kid.in_(kids)).values(active=False))

    async def insert_key(self, key: SigningKey) -> bool:
        """False when another replica inserted a key of that generation first."""
        try:
            async with self._tx() as s:
                s.add(key)
            return True
        except IntegrityError:
            return False


def _throttle_key(username: str, client: str) -> tuple[Any, Any]:
    return LoginThrottle.username == username, LoginThrottle.client == client


async def claim_first_admin(s: AsyncSession, user_id: str, now: datetime) -> bool:
    """Insert the one bootstrap row in this transaction: whoever inserts it is admin.

    Of two concurrent first registrations the second waits on the unique key (PostgreSQL)
    or on the single writer (SQLite) and then fails to insert it.
    """
    if await s.scalar(select(AdminBootstrap.id)) is not None:
        return False
    try:
        async with s.begin_nested():
            s.add(AdminBootstrap(id=1, user_id=user_id, created_at=now))
        return True
    except IntegrityError:
        return False
