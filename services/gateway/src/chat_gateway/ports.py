"""The realtime core's collaborators, as small interfaces (ports).

The hub, the sender, sync and the connections talk to these, never to nats-py or
Starlette directly (as centrifuge's ``Broker`` and ``Transport``):

- ``Bus``: core publish/subscribe with this process's private inbox. Over NATS:
  ``nats_bus.NatsBus``; in memory, for unit tests: ``memory_bus.MemoryBus``.
- ``MessagesApi``: the messages-service calls of the realtime core (membership on attach,
  gap fill, sync, a duplicate send's first event). Over RPC: ``nats_bus.RpcMessagesApi``.
- ``Transport``: one client's socket; frames arrive as text already encoded, so an event is
  encoded once per gateway and the same string goes to every local recipient
  (``hub.ConvState._deliver``). Starlette's ``WebSocket`` is one. Under uvicorn the same
  socket also takes prepared frames synchronously (``wire.FrameSink``, from
  ``ws_protocol.py``): the fanout's fast path writes one event's wire bytes to every
  local recipient without a task or an ASGI message per frame (``connection.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from chat_proto.events import Attachment
from chat_proto.replies import Events, SyncReply, UserConvs, WireEvent


class BusMessage(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def data(self) -> bytes: ...


Handler = Callable[[BusMessage], Awaitable[None]]


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    def inbox(self, name: str) -> str:
        """A subject under this process's own inbox prefix (``name`` may end in ``*``)."""
        ...

    async def publish(
        self, subject: str, data: bytes, *, reply: str = "", headers: dict[str, str] | None = None
    ) -> None: ...

    async def subscribe(self, subject: str, handler: Handler) -> Subscription: ...

    async def flush(self, timeout: float) -> None: ...


class MessagesApi(Protocol):
    async def user_convs(self, user: str) -> UserConvs:
        """The user's conversations with their last seq and the user's role."""
        ...

    async def events(self, conv: str, after: int, before: int | None = None) -> Events:
        """Events of ``conv`` after ``after`` (and before ``before``), in seq order."""
        ...

    async def sync(self, user: str, positions: list[tuple[str, int]], per_conv: int, max_bytes: int) -> SyncReply:
        """One batched catch-up call (``svc.messages.sync``) on behalf of ``user``."""
        ...

    async def lookup_send(self, user: str, conv: str, client_msg_id: str) -> WireEvent:
        """The event a ``client_msg_id`` of ``user`` was stored as (``not_found`` if none)."""
        ...


class MediaApi(Protocol):
    async def resolve(self, user: str, media_ids: list[str]) -> list[Attachment]:
        """``user``'s uploads ``media_ids`` as attachment objects (``not_found`` if any is
        not theirs or gone)."""
        ...


class Transport(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...
