"""Drain on SIGTERM: stop taking work, close every WebSocket with 1012 spread over a window.

``__main__`` calls ``begin()`` from its SIGTERM handler (``/readyz`` answers 503, new
WebSockets are closed with 1012 at once, REST ``/v1`` answers 503) and then awaits
``run()``: the connections open at that moment are closed in ``slices`` evenly spread over
``window_s`` seconds (so their clients do not all reconnect elsewhere in the same instant),
each once the answers to the frames it already read are written. ``run()`` returns when
all are closed, or ``answers_wait_s`` after the last slice; uvicorn's own shutdown follows
(it would close whatever is left with 1012 at once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from chat_proto.frames import CLOSE_SERVICE_RESTART
from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket

from chat_gateway.light import Waitable

log = logging.getLogger("chat.gateway.drain")

DRAIN_CLOSES = Counter("chat_gateway_drain_closes_total", "WebSocket connections closed with 1012 by the drain")
DRAINING = Gauge("chat_gateway_draining", "1 while this gateway drains (SIGTERM received)")

SLICE_S = 0.1  # at most 10 slices a second


class Drainable(Protocol):
    async def run(self) -> None: ...

    def drain(self) -> None:
        """Close with 1012 once the answers to the frames already read are written."""

    @property
    def closed(self) -> Waitable: ...


class Drain:
    def __init__(self, window_s: float, answers_wait_s: float) -> None:
        self.window_s = window_s
        self.answers_wait_s = answers_wait_s
        self.draining = False
        self.sessions: set[Drainable] = set()

    def begin(self) -> None:
        """Safe to call from a signal handler: only flips the flag."""
        self.draining = True

    async def serve(self, ws: WebSocket, session: Drainable) -> None:
        """Run ``session`` as one of the connections to drain; while draining, close at once."""
        if self.draining:
            await ws.accept()
            await ws.close(CLOSE_SERVICE_RESTART, "service restart")
            return
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def run(self) -> None:
        self.begin()
        DRAINING.set(1)
        started = time.monotonic()
        sessions = list(self.sessions)
        n = len(sessions)
        slices = max(1, min(n, round(self.window_s / SLICE_S)))
        log.info("draining", extra={"connections": n, "window_s": self.window_s, "slices": slices})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for k in range(slices):
            await asyncio.sleep(max(0.0, t0 + k * self.window_s / slices - loop.time()))
            for s in sessions[k * n // slices : (k + 1) * n // slices]:
                s.drain()
                DRAIN_CLOSES.inc()
        pending = [asyncio.ensure_future(s.closed.wait()) for s in sessions if not s.closed.is_set()]
        if pending:
            _done, left = await asyncio.wait(pending, timeout=self.answers_wait_s)
            for f in left:
                f.cancel()
        log.info("drained", extra={"connections": n, "s": round(time.monotonic() - started, 2)})
