"""Presence reports of this gateway (``chat_proto.presence``) to every presence replica.

- every ``interval_s`` a ``full`` report: every user with at least one authenticated
  connection here (in parts of ``PART_USERS``), one message per gateway, not per connection;
- a ``delta`` within ``batch_s`` of a user's first connection authenticating or last one
  closing (net changes against what was last reported: a connection that comes and goes
  within the batch makes no report);
- ``bye`` at shutdown.

A user's connect always goes out in a delta (before the full report when one is due):
a presence replica warming up announces deltas but takes full reports as its baseline.

One task sends everything, so reports leave in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from chat_proto import subjects
from chat_proto.presence import PART_USERS, GatewayReport, encode_report
from chat_proto.timefmt import now_ts
from prometheus_client import Counter

from chat_gateway.ports import Bus

log = logging.getLogger("chat.gateway.presence")
REPORTS = Counter("chat_gateway_presence_reports_total", "Presence reports published", ["kind"])


class PresenceReporter:
    def __init__(
        self, bus: Bus, users: Mapping[str, object], gateway_id: str, interval_s: float, batch_s: float
    ) -> None:
        self.bus = bus
        self.users = users  # the hub's user -> connections (authenticated connections only)
        self.gateway_id = gateway_id
        self.interval_s = interval_s
        self.batch_s = batch_s
        self._dirty: set[str] = set()
        self._reported: set[str] = set()
        self._wake = asyncio.Event()
        self._snapshot = 0
        self._task: asyncio.Task[None] | None = None

    def changed(self, user: str) -> None:
        """The hub: ``user``'s first connection attached, or their last one detached."""
        self._dirty.add(user)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._publish(self._report("bye"))
            await self.bus.flush(2)

    async def _run(self) -> None:
        next_full = time.monotonic()
        while True:
            wait = next_full - time.monotonic()
            if wait > 0 and not self._dirty:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                if time.monotonic() >= next_full:
                    next_full = max(next_full + self.interval_s, time.monotonic() + self.interval_s / 2)
                    if self._dirty:
                        # A connect is announced by a delta, never only by a full report: a
                        # replica still warming up takes users first listed in a full report
                        # as its baseline and would not announce them.
                        await self._delta()
                    await self._full()
                elif self._dirty:
                    await asyncio.sleep(min(self.batch_s, max(0.0, next_full - time.monotonic())))
                    if time.monotonic() < next_full:
                        await self._delta()
            except Exception as exc:  # the bus is reconnecting: the next full report repairs
                log.warning("presence report failed", extra={"error": repr(exc)})

    async def _full(self) -> None:
        users = list(self.users)
        self._dirty.clear()
        self._reported = set(users)
        self._snapshot += 1
        parts = max(1, -(-len(users) // PART_USERS))
        ts = now_ts()
        for i in range(parts):
            chunk = users[i * PART_USERS : (i + 1) * PART_USERS]
            await self._publish(self._report("full", ts=ts, snapshot=self._snapshot, part=i, parts=parts, users=chunk))

    async def _delta(self) -> None:
        dirty, self._dirty = self._dirty, set()
        came = [u for u in dirty if u in self.users and u not in self._reported]
        gone = [u for u in dirty if u not in self.users and u in self._reported]
        self._reported.update(came)
        self._reported.difference_update(gone)
        ts = now_ts()
        for i in range(0, max(len(came), len(gone)), PART_USERS):
            part = slice(i, i + PART_USERS)
            await self._publish(self._report("delta", ts=ts, users=came[part], gone=gone[part]))

    def _report(self, kind: str, ts: str | None = None, **kw: object) -> GatewayReport:
        return GatewayReport(gateway_id=self.gateway_id, kind=kind, interval_s=self.interval_s, ts=ts or now_ts(), **kw)

    async def _publish(self, report: GatewayReport) -> None:
        await self.bus.publish(subjects.presence_hb(self.gateway_id), encode_report(report))
        REPORTS.labels(report.kind).inc()
