"""Small interfaces the service rules depend on (implemented over NATS in ``bus_adapters``)."""

from __future__ import annotations

from typing import Protocol

from chat_proto.events import Event


class Publisher(Protocol):
    async def publish_events(self, events: list[Event]) -> None:
        """Publish to ``chat.evt.conv.<conv>`` (stream CHAT_EVENTS), in list order."""

    async def notify_membership(self, user: str, event: Event) -> None:
        """Tell gateways holding ``user``'s connections about a membership change."""


class UserDirectory(Protocol):
    async def missing(self, user_ids: list[str]) -> list[str]:
        """The ids among ``user_ids`` that are not registered users."""


class EphemeralPublisher(Protocol):
    async def publish_ephemeral(self, conv: str, frame: bytes) -> None:
        """Publish a ready WebSocket frame on ``chat.eph.conv.<conv>`` (core NATS, not stored)."""
