"""Answers in frame order: frames are handled concurrently (a send waits for the store)
but their answers are written in the order the frames arrived.

Each frame read gets a slot (a future) in a bounded queue (``GATEWAY_MAX_INFLIGHT_FRAMES``:
a full queue stops the reader, so a client cannot pile up unanswered frames); one task
writes the slots out in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chat_proto import frames as F
from chat_proto.errors import ChatError, ErrorCode

from chat_gateway.light import Queue

log = logging.getLogger("chat.gateway.ws")

# An answer: frames to write, then an optional action run right after they are queued.
# Frames may be given as a function, evaluated when they are queued (sync replays filter
# against what the connection has received by then).
Frames = list[str] | Callable[[], list[str]]
Answer = tuple[Frames, Callable[[], None] | None]
NOTHING: Answer = ([], None)


def done(value: Any) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut


class Answers:
    def __init__(self, max_inflight: int, write: Callable[[str], Awaitable[None]], conn_id: str) -> None:
        # light.Queue: asyncio.Queue's ~3 KiB per connection are allocated up front
        self._q: Queue[asyncio.Future[Answer | None]] = Queue(max_inflight)
        self._write = write
        self._conn_id = conn_id
        # Set by close_after(): written behind the last answer.
        self.final_close: tuple[int, str] | None = None
        self._late: asyncio.Future[None] | None = None

    async def put(self, slot: asyncio.Future[Answer | None] | asyncio.Future[Answer]) -> None:
        await self._q.put(slot)  # type: ignore[arg-type]

    async def put_now(self, frames: list[str]) -> None:
        await self._q.put(done((frames, None)))

    def put_nowait_or_later(self, answer: Answer) -> None:
        """Queue ``answer`` even when the queue is full (drain: the last answer closes)."""
        try:
            self._q.put_nowait(done(answer))
        except asyncio.QueueFull:
            self._late = asyncio.ensure_future(self._q.put(done(answer)))

    def close_after(self, code: int, reason: str) -> None:
        self.final_close = (code, reason)

    async def end(self) -> None:
        """No more frames will be read: the writer stops after the answers queued so far."""
        await self._q.put(done(None))

    async def write_all(self, on_close: Callable[[int, str], None]) -> None:
        """Write answers in order until ``end()``; then the ``close_after`` close, if any."""
        while True:
            slot = await self._q.get()
            try:
                answer = await slot
            except Exception:
                log.exception("frame handler failed", extra={"conn": self._conn_id})
                answer = ([F.error_frame(ChatError(ErrorCode.INTERNAL))], None)
            if answer is None:
                if self.final_close:
                    on_close(*self.final_close)
                return
            frames, after = answer
            for text in frames() if callable(frames) else frames:
                await self._write(text)
            if after is not None:
                after()
