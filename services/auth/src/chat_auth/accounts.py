"""Account state and the user directory. No FastAPI, no NATS: rpc.py and the operators'
CLI (admin.py) call it; revocations go out through a ``RevocationPublisher``.

- admin ops act for an ``actor`` (the ``Chat-User`` of the request), who must be an
  active admin; the operator CLI calls the unchecked ops directly.
- at least one active admin always remains; an admin cannot deactivate themself.
- deactivation revokes every refresh family and publishes ``UserRevoked`` so gateways
  refuse the user's unexpired access tokens and close their connections.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from chat_proto.auth_api import (
    MAX_ACCESS_TTL_S,
    REVOCATION_MARGIN_S,
    AccountOut,
    MeOut,
    UserRevoked,
)
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.timefmt import format_ts
from chat_proto.timefmt import now as utc_now

from chat_auth.accounts_store import AccountsStore, LastAdmin
from chat_auth.models import User
from chat_auth.service import Clock, user_out

log = logging.getLogger("chat.auth.accounts")

REVOCATIONS_MAX = 10_000
REASON_DEACTIVATED = "deactivated"


class RevocationPublisher(Protocol):
    async def publish(self, event: UserRevoked) -> None: ...


def account_out(user: User) -> AccountOut:
    at = user.deactivated_at
    return AccountOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        admin=user.is_admin,
        deactivated=at is not None,
        deactivated_at=format_ts(at) if at is not None else None,
    )


def revoked_event(user_id: str, at: datetime, reason: str = REASON_DEACTIVATED) -> UserRevoked:
    return UserRevoked(user_id=user_id, revoked_at=format_ts(at), reason=reason)


class AccountsService:
    def __init__(
        self, store: AccountsStore, publisher: RevocationPublisher | None = None, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock

    # --- anyone authenticated ------------------------------------------------------------
    async def me(self, user_id: str) -> MeOut:
        user = await self._store.by_id(user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        return MeOut(**user_out(user).model_dump(), admin=user.is_admin)

    async def search(self, q: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """Active users by username prefix, ordered by username; keyset-paged by username."""
        rows = await self._store.search(q.lower(), limit + 1, cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        users = [user_out(u).model_dump() for u in rows]
        return {"users": users, "next_cursor": rows[-1].username if more else None}

    async def revocations(self) -> dict[str, Any]:
        """Revocations whose tokens may still be unexpired (gateways load them at start)."""
        since = self._clock() - timedelta(seconds=MAX_ACCESS_TTL_S + REVOCATION_MARGIN_S)
        rows = await self._store.revoked_since(since, REVOCATIONS_MAX)
        return {"revocations": [revoked_event(uid, at).model_dump() for uid, at in rows]}

    # --- admin REST (checked) ------------------------------------------------------------
    async def require_admin(self, actor: str) -> None:
        user = await self._store.by_id(actor)
        if user is None or not user.is_admin or user.deactivated_at is not None:
            raise ChatError(ErrorCode.FORBIDDEN, "admin only")

    async def admin_deactivate(self, actor: str, user_id: str) -> AccountOut:
        await self.require_admin(actor)
        if user_id == actor:
            raise ChatError(ErrorCode.CONFLICT, "an admin cannot deactivate themself")
        return await self.deactivate(user_id)

    async def admin_reactivate(self, actor: str, user_id: str) -> AccountOut:
        await self.require_admin(actor)
        return await self.reactivate(user_id)

    async def admin_set_admin(self, actor: str, user_id: str, admin: bool) -> AccountOut:
        await self.require_admin(actor)
        return await self.set_admin(user_id, admin)

    # --- unchecked ops (the operator CLI; the admin ops above after their checks) --------
    async def user_id_by_username(self, username: str) -> str:
        user = await self._store.by_username(username)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, f"no such user: {username}")
        return user.id

    async def admins(self) -> list[AccountOut]:
        return [account_out(u) for u in await self._store.admins()]

    async def deactivate(self, user_id: str) -> AccountOut:
        try:
            user = await self._store.deactivate(user_id, self._clock())
        except LastAdmin:
            raise ChatError(ErrorCode.CONFLICT, "the last active admin cannot be deactivated") from None
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        assert user.tokens_revoked_at is not None
        log.info("user deactivated", extra={"user": user.id})
        await self._publish(revoked_event(user.id, user.tokens_revoked_at))
        return account_out(user)

    async def reactivate(self, user_id: str) -> AccountOut:
        user = await self._store.reactivate(user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        log.info("user reactivated", extra={"user": user.id})
        return account_out(user)

    async def bootstrap(self, user_id: str) -> AccountOut:
        """The first admin (operators, ``chat-admin bootstrap``): only while there is none."""
        if not await self._store.bootstrap_admin(user_id, self._clock()):
            raise ChatError(ErrorCode.CONFLICT, "the first admin exists already (use set-admin)")
        log.warning("first admin bootstrapped by an operator", extra={"user": user_id})
        user = await self._store.by_id(user_id)
        assert user is not None
        return account_out(user)

    async def set_admin(self, user_id: str, admin: bool) -> AccountOut:
        try:
            user = await self._store.set_admin(user_id, admin)
        except LastAdmin:
            raise ChatError(ErrorCode.CONFLICT, "the last active admin cannot lose the admin flag") from None
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        log.info("admin flag set", extra={"user": user.id, "admin": admin})
        return account_out(user)

    async def _publish(self, event: UserRevoked) -> None:
        """Best effort: the database is the truth; a gateway that misses this message
        picks the revocation up with its next ``revocations`` resync."""
        if self._publisher is None:
            log.warning("no revocation publisher", extra={"user": event.user_id})
            return
        try:
            await self._publisher.publish(event)
        except Exception as exc:
            log.warning("revocation not published", extra={"user": event.user_id, "error": repr(exc)})
