"""SQL of account state (admin flag, deactivation) and the user directory.

Each public method is one transaction. Rules that must hold under concurrency live here
as locks: "at least one active admin" locks the active admins' rows (PostgreSQL; SQLite
has one writer at a time anyway) before counting them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import ColumnElement, collate, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chat_auth.models import RefreshFamily, User
from chat_auth.store import claim_first_admin

LIKE_ESCAPE = "\\"


class LastAdmin(Exception):
    """The change would leave no active admin."""


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with ``prefix`` literally."""
    escaped = prefix.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class AccountsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Byte-order comparisons whatever the database collation: the prefix range below is
        # exact only in byte order (SQLite's default BINARY collation already is).
        self._name: ColumnElement[str] = (
            collate(User.username, "C") if engine.dialect.name == "postgresql" else User.username  # type: ignore[assignment]
        )

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    # --- reads ---------------------------------------------------------------------------
    async def by_id(self, user_id: str) -> User | None:
        async with self._tx() as s:
            return await s.get(User, user_id)

    async def by_username(self, username: str) -> User | None:
        async with self._tx() as s:
            return await s.scalar(select(User).where(User.username == username))

    async def admins(self) -> list[User]:
        async with self._tx() as s:
            return list(await s.scalars(select(User).where(User.is_admin.is_(True)).order_by(User.username)))

    async def search(self, prefix: str, limit: int, after: str | None) -> list[User]:
        """Active users whose username starts with ``prefix``, by username, after ``after``.

        The range ``prefix <= username < prefix || U+FFFF`` uses the username index; the
        escaped LIKE keeps the match exact (``_`` and ``%`` are literal).
        """
        name = self._name
        stmt = select(User).where(
            name >= prefix,
            name < prefix + "\uffff",
            User.username.like(like_prefix(prefix), escape=LIKE_ESCAPE),
            User.deactivated_at.is_(None),
        )
        if after is not None:
            stmt = stmt.where(name > after)
        async with self._tx() as s:
            return list(await s.scalars(stmt.order_by(name).limit(limit)))

    async def revoked_since(self, since: datetime, limit: int) -> list[tuple[str, datetime]]:
        """(user_id, tokens_revoked_at) of revocations after ``since``, newest first."""
        async with self._tx() as s:
            rows = await s.execute(
                select(User.id, User.tokens_revoked_at)
                .where(User.tokens_revoked_at > since)
                .order_by(User.tokens_revoked_at.desc())
                .limit(limit)
            )
            return [(uid, at) for uid, at in rows if at is not None]

    # --- writes --------------------------------------------------------------------------
    async def bootstrap_admin(self, user_id: str, now: datetime) -> bool:
        """Make ``user_id`` the first admin when nobody was yet (one time, race-free)."""
        async with self._tx() as s:
            user = await s.get(User, user_id)
            if user is None or not await claim_first_admin(s, user_id, now):
                return False
            user.is_admin = True
            return True

    async def set_admin(self, user_id: str, admin: bool) -> User | None:
        """Set the flag; None for an unknown user. Raises LastAdmin."""
        async with self._tx() as s:
            user = await s.get(User, user_id)
            if user is None:
                return None
            if not admin:
                await self._keep_an_admin(s, user)
            user.is_admin = admin
            return user

    async def deactivate(self, user_id: str, now: datetime) -> User | None:
        """Deactivate and revoke every refresh family, in one transaction.

        Already deactivated: unchanged (its revocation time stays). None for an unknown
        user. Raises LastAdmin.
        """
        async with self._tx() as s:
            user = await s.get(User, user_id)
            if user is None:
                return None
            if user.deactivated_at is None:
                await self._keep_an_admin(s, user)
                user.deactivated_at = now
                user.tokens_revoked_at = now
            await s.execute(
                update(RefreshFamily)
                .where(RefreshFamily.user_id == user_id, RefreshFamily.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return user

    async def reactivate(self, user_id: str) -> User | None:
        """Clear the deactivation (``tokens_revoked_at`` stays). None for an unknown user."""
        async with self._tx() as s:
            user = await s.get(User, user_id)
            if user is not None:
                user.deactivated_at = None
            return user

    @staticmethod
    async def _keep_an_admin(s: AsyncSession, user: User) -> None:
        """Refuse when ``user`` is the only active admin (about to lose the flag or be
        deactivated). The active admins' rows are locked first, so two admins demoting
        themselves at once cannot both pass."""
        if not user.is_admin or user.deactivated_at is not None:
            return
        admins = list(
            await s.scalars(
                select(User.id)
                .where(User.is_admin.is_(True), User.deactivated_at.is_(None))
                .order_by(User.id)
                .with_for_update()
            )
        )
        if admins == [user.id]:
            raise LastAdmin(user.id)
