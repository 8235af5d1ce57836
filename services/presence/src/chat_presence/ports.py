"""Small interfaces the presence rules depend on (implemented over NATS in ``bus_adapters``,
and by ``store.LastSeenStore``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Fanout(Protocol):
    async def publish(self, conv: str, frame: bytes) -> None:
        """Publish a ready ``presence`` frame on the conversation's ephemeral subject."""


class Directory(Protocol):
    async def presence_convs(self, users: list[str]) -> dict[str, list[str]]:
        """Each user's conversations that get presence pushes (dm, group, small channel)."""

    async def shared_with(self, user: str, others: list[str]) -> list[str]:
        """Those of ``others`` sharing a conversation with ``user`` (``user`` included)."""


class LastSeen(Protocol):
    async def save(self, rows: Iterable[tuple[str, str, bool]]) -> None: ...

    async def get(self, users: list[str]) -> dict[str, tuple[str, bool]]: ...

    async def marked_online(self) -> dict[str, str]: ...
