"""An in-memory ``Bus`` (``ports.py``) for unit tests of the realtime core: NATS subject
matching (``*`` one token, ``>`` the rest), delivery in publish order through one task per
subscription (as nats-py does), and a record of what was published."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from chat_gateway.ports import Handler

log = logging.getLogger("chat.gateway.memory_bus")


@dataclass
class MemoryMessage:
    subject: str
    data: bytes
    reply: str = ""
    headers: dict[str, str] | None = None


def matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


@dataclass(eq=False)
class MemorySubscription:
    bus: MemoryBus
    subject: str
    handler: Handler
    queue: asyncio.Queue[MemoryMessage] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    async def unsubscribe(self) -> None:
        self.bus.subs.discard(self)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        while True:
            msg = await self.queue.get()
            try:
                await self.handler(msg)
            except Exception:  # as nats-py: the error is logged, the subscription lives on
                log.exception("subscription handler failed", extra={"subject": msg.subject})
            finally:
                self.queue.task_done()


class MemoryBus:
    def __init__(self) -> None:
        self.subs: set[MemorySubscription] = set()
        self.published: list[MemoryMessage] = []
        # Called (synchronously) for each publish before delivery: a test plays a service here.
        self.on_publish: list[Handler] = []

    def inbox(self, name: str) -> str:
        return f"_INBOX.memory.{name}"

    async def publish(
        self, subject: str, data: bytes, *, reply: str = "", headers: dict[str, str] | None = None
    ) -> None:
        msg = MemoryMessage(subject, data, reply, headers)
        self.published.append(msg)
        for sub in list(self.subs):
            if matches(sub.subject, subject):
                sub.queue.put_nowait(msg)
        for hook in list(self.on_publish):
            await hook(msg)

    async def subscribe(self, subject: str, handler: Handler) -> MemorySubscription:
        sub = MemorySubscription(self, subject, handler)
        sub.task = asyncio.create_task(sub._run())
        self.subs.add(sub)
        return sub

    async def flush(self, timeout: float = 1.0) -> None:
        """Wait until every subscription has handled what was published to it."""
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(s.queue.join() for s in list(self.subs)))
            await asyncio.sleep(0)  # what the handlers published meanwhile
            if any(not s.queue.empty() for s in self.subs):
                await self.flush(timeout)

    def subjects(self) -> set[str]:
        """The subjects subscribed to right now."""
        return {s.subject for s in self.subs}

    async def close(self) -> None:
        for sub in list(self.subs):
            await sub.unsubscribe()
