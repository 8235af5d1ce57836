"""Presence rules: gateway reports -> status changes -> ``presence`` frames for the users who
share a conversation with the user who changed; durable ``last_seen``; queries.

Every replica receives every report and keeps the same soft state (``state.py``), so every
replica publishes the same changes: gateways drop a frame a connection already got (same
status for that user), so two replicas cost frames on the bus, not on sockets.

Rounds every ``coalesce_s``: decide (``state.tick``), drain the changes of the round,
publish them (one RPC for the round's users' conversations, cached), write them. Changes
that could not be published (messages unavailable) wait for the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chat_proto.ephemeral import PresenceOut, encode
from chat_proto.errors import ChatError
from chat_proto.presence import GatewayReport, PresenceEntry
from prometheus_client import Counter, Gauge, Histogram

from chat_presence.ports import Directory, Fanout, LastSeen
from chat_presence.state import Change, PresenceState

log = logging.getLogger("chat.presence")

REPORTS = Counter("chat_presence_reports_total", "Gateway reports received", ["kind"])
CHANGES = Counter("chat_presence_changes_total", "Status changes published", ["status"])
FRAMES = Counter("chat_presence_frames_published_total", "presence frames published (one per conversation)")
ONLINE = Gauge("chat_presence_online_users", "Users considered online")
GATEWAYS = Gauge("chat_presence_gateways", "Gateways heard from and not declared dead")
ROUNDS = Histogram(
    "chat_presence_round_seconds",
    "One decide/publish/write round",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class PresenceService:
    def __init__(
        self,
        state: PresenceState,
        fanout: Fanout,
        directory: Directory,
        store: LastSeen,
        *,
        clock: Callable[[], float],
        coalesce_s: float,
        persist_interval_s: float,
    ) -> None:
        self.state, self.fanout, self.directory, self.store = state, fanout, directory, store
        self.clock = clock
        self.coalesce_s = coalesce_s
        self.persist_interval_s = persist_interval_s
        self._persisted_at = clock()
        self._reconciled = False
        # written to the store when it answers: user -> (last_seen, online)
        self._unsaved: dict[str, tuple[str, bool]] = {}

    def on_report(self, report: GatewayReport) -> None:
        REPORTS.labels(report.kind).inc()
        self.state.apply(report, self.clock())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.coalesce_s)
            started = self.clock()
            try:
                await self.step()
            except Exception:
                log.exception("presence round failed")
            ROUNDS.observe(self.clock() - started)

    async def step(self) -> None:
        now = self.clock()
        if not self._reconciled and self.state.warm(now):
            # Users still marked online whom nobody lists went offline while no replica ran.
            self.state.stale_online(await self.store.marked_online())
            self._reconciled = True
        self.state.tick(now)
        changes = self.state.drain()
        if changes:
            # Written before it is announced: what a client was told survives a restart of
            # this replica (a fresh one answers from the store until the gateways' reports
            # arrive). A failed write does not hold the announcement back; it is retried.
            for c in changes:
                self._unsaved[c.user_id] = (c.last_seen, c.status == "online")
            await self._save()
            await self._publish(changes)
        if now - self._persisted_at >= self.persist_interval_s:
            self._persisted_at = now
            for u, ts in self.state.online.items():
                self._unsaved[u] = (ts, True)
        await self._save()
        ONLINE.set(len(self.state.online))
        GATEWAYS.set(len(self.state.gateways))

    async def _publish(self, changes: list[Change]) -> None:
        try:
            convs = await self.directory.presence_convs([c.user_id for c in changes])
        except ChatError as err:
            log.warning("presence changes held back", extra={"error": str(err), "changes": len(changes)})
            self.state.requeue(changes)
            return
        n = 0
        for c in changes:
            frame = encode(PresenceOut(user_id=c.user_id, status=c.status, last_seen=c.last_seen))
            for conv in convs.get(c.user_id, ()):
                await self.fanout.publish(conv, frame)
                n += 1
            CHANGES.labels(c.status).inc()
        FRAMES.inc(n)

    async def _save(self) -> None:
        if not self._unsaved:
            return
        batch = dict(self._unsaved)
        try:
            await self.store.save((u, ts, on) for u, (ts, on) in batch.items())
        except Exception as exc:
            log.warning("last_seen not written, retrying", extra={"error": repr(exc), "rows": len(batch)})
            return
        for u, row in batch.items():
            if self._unsaved.get(u) == row:
                del self._unsaved[u]

    async def flush(self) -> None:
        """At shutdown: the online users' last_seen as of now."""
        for u, ts in self.state.online.items():
            self._unsaved[u] = (ts, True)
        await self._save()

    # --- queries -------------------------------------------------------------------------
    async def query(self, caller: str, user_ids: list[str]) -> dict[str, list[PresenceEntry]]:
        """Presence of those of ``user_ids`` who share a conversation with ``caller``."""
        visible = await self.directory.shared_with(caller, list(dict.fromkeys(user_ids)))
        online = self.state.online
        stored = await self.store.get([u for u in visible if u not in online and u not in self._unsaved])
        warm = self.state.warm(self.clock())
        return {"presence": [self._entry(u, stored.get(u), warm) for u in visible]}

    def _entry(self, user: str, stored: tuple[str, bool] | None, warm: bool) -> PresenceEntry:
        ts = self.state.online.get(user)
        if ts is not None:
            return PresenceEntry(user_id=user, status="online", last_seen=ts)
        stored = self._unsaved.get(user, stored)
        if stored is None:
            return PresenceEntry(user_id=user, status="offline", last_seen=None)
        ts, was_online = stored
        # Warming up: a user last known online is not called offline without evidence.
        status = "online" if was_online and not warm else "offline"
        return PresenceEntry(user_id=user, status=status, last_seen=ts)
