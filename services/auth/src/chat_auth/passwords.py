"""argon2id password hashing, off the event loop, in a bounded pool.

Hashing is the expensive part of auth (tens of milliseconds of CPU each), so it runs on
``workers`` threads (argon2 releases the GIL) with at most ``queue`` more waiting. Past
that, work is refused at once with ``unavailable`` and a retry time rather than queued
behind a flood: a login that would wait seconds is worth less than a fast "try again".
Queued work whose RPC caller has already given up (``chat_bus.rpc.expired``) is skipped.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from chat_bus.rpc import current_deadline
from chat_proto.errors import ChatError, ErrorCode
from prometheus_client import Counter, Gauge

HASHES = Counter("chat_auth_password_hashes_total", "Password hash operations", ["outcome"])
HASH_QUEUE = Gauge("chat_auth_password_hash_pending", "Hash operations running or waiting")
BUSY = "too many logins right now; try again"
T = TypeVar("T")


class HashPool:
    def __init__(self, workers: int, queue: int, retry_after_ms: int = 1000) -> None:
        self.limit = workers + queue
        self.retry_after_ms = retry_after_ms
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._pending = 0

    async def run(self, fn: Callable[[], T]) -> T:
        if self._pending >= self.limit:
            HASHES.labels("refused").inc()
            raise ChatError(ErrorCode.UNAVAILABLE, BUSY, retry_after_ms=self.retry_after_ms)
        deadline = current_deadline.get()
        loop = asyncio.get_running_loop()

        def job() -> T:
            if deadline is not None and time.time() > deadline:
                raise _Expired
            return fn()

        self._pending += 1
        HASH_QUEUE.set(self._pending)
        try:
            result = await loop.run_in_executor(self._executor, job)
        except _Expired:
            HASHES.labels("expired").inc()
            raise ChatError(ErrorCode.UNAVAILABLE, BUSY, retry_after_ms=self.retry_after_ms) from None
        finally:
            self._pending -= 1
            HASH_QUEUE.set(self._pending)
        HASHES.labels("done").inc()
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Expired(Exception):
    pass


class Passwords:
    def __init__(self, memory_kib: int, time_cost: int, parallelism: int, pool: HashPool | None = None) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID)
        self._pool = pool or HashPool(workers=2, queue=32)
        # Verified against for unknown users so that both paths cost the same.
        self._dummy = self._ph.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._pool.run(lambda: self._ph.hash(password))

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Constant-work check; ``stored_hash=None`` verifies against a dummy hash."""
        target = stored_hash or self._dummy

        def check() -> bool:
            try:
                return bool(self._ph.verify(target, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        ok = await self._pool.run(check)
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._ph.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False
