"""Revocations out to the gateways: ``UserRevoked`` on ``chat.user.revoked.<user_id>`` (core NATS)."""

from __future__ import annotations

from chat_proto.auth_api import UserRevoked
from chat_proto.subjects import user_revoked
from nats.aio.client import Client as NATS

FLUSH_TIMEOUT_S = 2


class NatsRevocationPublisher:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def publish(self, event: UserRevoked) -> None:
        """Raises when NATS does not confirm it has the message within FLUSH_TIMEOUT_S."""
        await self._nc.publish(user_revoked(event.user_id), event.model_dump_json().encode())
        await self._nc.flush(timeout=FLUSH_TIMEOUT_S)
