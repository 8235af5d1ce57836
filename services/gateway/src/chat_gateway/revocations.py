"""Revoked users (deactivated accounts): refuse their unexpired access tokens, close their sockets.

A deny-list ``{user_id: revoked_at}`` fed by
- the auth RPC ``svc.auth.revocations`` (every revocation of the last access-token lifetime
  plus a margin) at start-up, loaded before the first token is accepted, and again every
  ``resync_s`` (covers messages missed while disconnected from NATS);
- a wildcard subscription to ``chat.user.revoked.*`` (``UserRevoked``), published by auth
  when it deactivates a user.
A token of a listed user with ``iat <= revoked_at`` is refused like an invalid one; on a new
revocation every local connection authenticated with such a token is closed with 4001.
An entry is dropped once no token it can refuse is still unexpired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from chat_bus.rpc import RpcClient
from chat_proto import ops
from chat_proto.auth_api import MAX_ACCESS_TTL_S, REVOCATION_MARGIN_S, UserRevoked
from chat_proto.errors import ChatError
from chat_proto.frames import CLOSE_UNAUTHORIZED
from chat_proto.subjects import USER_REVOKED_ALL
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from chat_gateway.hub import Hub
from chat_gateway.ports import Bus, BusMessage, Subscription

log = logging.getLogger("chat.gateway.revocations")

REVOKED_USERS = Gauge("chat_gateway_revoked_users", "Users on the revocation deny-list")
REVOCATION_CLOSES = Counter("chat_gateway_revocation_closes_total", "Connections closed because the user was revoked")
KEEP_S = MAX_ACCESS_TTL_S + REVOCATION_MARGIN_S
CLOSE_REASON = "account deactivated"


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


class DenyList:
    """``{user_id: revoked_at}`` (epoch seconds); entries expire ``keep_s`` after ``revoked_at``."""

    def __init__(self, keep_s: float = KEEP_S, clock: Callable[[], float] = time.time) -> None:
        self.keep_s = keep_s
        self._clock = clock
        self._at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._at)

    def add(self, user_id: str, revoked_at: float) -> bool:
        """True when this is news (a user not listed, or a later revocation)."""
        if revoked_at + self.keep_s <= self._clock() or self._at.get(user_id, float("-inf")) >= revoked_at:
            return False
        self._at[user_id] = revoked_at
        return True

    def revoked_at(self, user_id: str) -> float | None:
        at = self._at.get(user_id)
        if at is not None and at + self.keep_s <= self._clock():
            del self._at[user_id]
            return None
        return at

    def refused(self, user_id: str, iat: float) -> bool:
        at = self.revoked_at(user_id)
        return at is not None and iat <= at

    def expire(self) -> None:
        limit = self._clock() - self.keep_s
        for user_id in [u for u, at in self._at.items() if at <= limit]:
            del self._at[user_id]


class Revocations:
    """The deny-list kept current from auth; the check ``TokenVerifier`` consults."""

    def __init__(self, bus: Bus, rpc: RpcClient, hub: Hub, resync_s: float, deny: DenyList | None = None) -> None:
        self.bus, self.rpc, self.hub, self.resync_s = bus, rpc, hub, resync_s
        self.deny = deny or DenyList()
        self._loaded = False
        self._lock = asyncio.Lock()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Subscribe before loading: a revocation published in between is not missed.
        self._sub = await self.bus.subscribe(USER_REVOKED_ALL, self._on_message)
        try:
            await self.load()
        except ChatError as err:
            log.warning("revocations not loaded yet; tokens wait for them", extra={"error": err.message})
        self._task = asyncio.create_task(self._resync_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass

    async def load(self) -> None:
        """Fetch recent revocations from auth (raises ChatError ``unavailable``)."""
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        res = await self.rpc.request(ops.auth.REVOCATIONS)
        for item in res.revocations:
            self._apply(item)
        self.deny.expire()
        REVOKED_USERS.set(len(self.deny))
        self._loaded = True

    async def ensure_loaded(self) -> None:
        """Fail closed: no token is accepted before the deny-list was loaded once (the
        requests waiting meanwhile share one load)."""
        if self._loaded:
            return
        async with self._lock:
            if not self._loaded:
                await self._load()

    def refused(self, user_id: str, iat: float) -> bool:
        return self.deny.refused(user_id, iat)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_s if self._loaded else 1.0)
            try:
                await self.load()
            except ChatError as err:
                log.warning("revocations resync failed", extra={"error": err.message})
            except Exception:
                log.exception("revocations resync failed")

    async def _on_message(self, msg: BusMessage) -> None:
        try:
            event = UserRevoked.model_validate_json(msg.data)
        except ValidationError:
            log.warning("undecodable revocation", extra={"subject": msg.subject})
            return
        self._apply(event)
        REVOKED_USERS.set(len(self.deny))

    def _apply(self, event: UserRevoked) -> None:
        try:
            at = epoch(event.revoked_at)
        except ValueError:
            log.warning("revocation with a bad time", extra={"user": event.user_id})
            return
        if not self.deny.add(event.user_id, at):
            return
        closed = 0
        for conn in list(self.hub.users.get(event.user_id, ())):
            if conn.issued_at <= at:
                conn.close_now(CLOSE_UNAUTHORIZED, CLOSE_REASON)
                closed += 1
        REVOCATION_CLOSES.inc(closed)
        log.info("user revoked", extra={"user": event.user_id, "reason": event.reason, "closed": closed})
