"""WS ``typing {conv}``: relayed to the conversation's other members, never stored.

The connection must be live in ``conv`` (else ``not_found``); a ``guest`` may not type
(``forbidden``; roles per conversation come from the hub). More than one frame per user per
conversation per ``interval_s`` on this gateway is dropped silently. Otherwise a
``TypingOut`` goes on the conversation's ephemeral subject, and every gateway serving the
conversation relays it to the other members' connections (dropped first under backpressure).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat_proto import ephemeral, subjects
from chat_proto.errors import ChatError, ErrorCode
from prometheus_client import Counter

from chat_gateway.connection import Connection
from chat_gateway.hub import Hub
from chat_gateway.ports import Bus

TYPING = Counter("chat_gateway_typing_total", "WS typing frames", ["outcome"])


class TypingRelay:
    def __init__(
        self,
        bus: Bus,
        hub: Hub,
        interval_s: float = 1.0,
        expires_ms: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.hub = hub
        self.interval_s = interval_s
        self.expires_ms = expires_ms
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._prune_at = 1024

    async def typing(self, conn: Connection, conv: str) -> None:
        if conv not in conn.convs:
            TYPING.labels("not_found").inc()
            raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
        state = self.hub.convs.get(conv)
        if state is not None and state.roles.get(conn.user) == "guest":
            TYPING.labels("forbidden").inc()
            raise ChatError(ErrorCode.FORBIDDEN, "guests may not type")
        if not self.allow(conn.user, conv):
            TYPING.labels("dropped").inc()
            return
        frame = ephemeral.TypingOut(conv=conv, user_id=conn.user, expires_in_ms=self.expires_ms)
        await self.bus.publish(subjects.eph_conv(conv), ephemeral.encode(frame))
        TYPING.labels("relayed").inc()

    def allow(self, user: str, conv: str) -> bool:
        now = self.clock()
        key = (user, conv)
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        if len(self._last) > self._prune_at:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval_s}
            self._prune_at = max(1024, 2 * len(self._last))
        return True
