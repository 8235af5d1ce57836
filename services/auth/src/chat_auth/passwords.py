"""argon2id password hashing, off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._ph = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against for unknown users so that both paths cost the same.
        self._dummy = self._ph.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._ph.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Constant-work check; ``stored_hash=None`` verifies against a dummy hash."""
        target = stored_hash or self._dummy
        ok: bool
        try:
            ok = await asyncio.to_thread(self._ph.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._ph.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False
