"""Who is online, derived from gateway reports: a pure state machine (no I/O, no clock).

Soft state, rebuilt from heartbeats:
- per gateway: the users it lists, when it was last heard from, its interval;
- per user: the gateways listing them (``where``) and, for users considered online, the
  ``last_seen`` timestamp of the newest report listing them.

Transitions (``Change``), each at most once per real change:
- **online** when a user starts being listed by some gateway while not online. A user
  first learned from a *full* report while warming up (a fresh replica) is taken as the
  baseline and not announced: they were online before this replica started. Deltas are
  real connects and are announced even while warming up.
- **offline** when no live gateway lists the user any more: after ``grace_s`` when a
  gateway said so (delta, full report, bye), at once when the gateway is declared dead
  (silent for ``dead_after`` of its intervals: the silence was the grace). Reappearing
  before the offline is due cancels it: a quick reconnect produces nothing. While warming
  up no offline is decided; pending ones become due when warm-up ends.
- Changes wait in ``pending`` until drained; an opposite change of the same user cancels a
  pending one (coalescing: clients never saw the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chat_proto.presence import GatewayReport

Status = Literal["online", "offline"]


@dataclass(frozen=True)
class Change:
    user_id: str
    status: Status
    last_seen: str


class _Gateway:
    __slots__ = ("acc", "heard", "interval", "next_part", "snapshot", "ts", "users")

    def __init__(self, interval: float, heard: float, ts: str) -> None:
        self.users: set[str] = set()
        self.interval = interval
        self.heard = heard
        self.ts = ts
        # a full report arriving in parts
        self.snapshot = -1
        self.next_part = 0
        self.acc: set[str] | None = None


class PresenceState:
    def __init__(self, *, now: float, grace_s: float, dead_after: float, warmup_s: float) -> None:
        self.grace = grace_s
        self.dead_after = dead_after
        self.warm_at = now + warmup_s
        self.gateways: dict[str, _Gateway] = {}
        self.where: dict[str, set[str]] = {}
        # users considered online (those whose offline is pending included) -> last_seen
        self.online: dict[str, str] = {}
        # user -> (when the offline is due, its last_seen)
        self.leaving: dict[str, tuple[float, str]] = {}
        self.pending: dict[str, Change] = {}

    def warm(self, now: float) -> bool:
        return now >= self.warm_at

    # --- reports -------------------------------------------------------------------------
    def apply(self, r: GatewayReport, now: float) -> None:
        gw = self.gateways.get(r.gateway_id)
        if gw is None:
            if r.kind == "bye":
                return
            gw = self.gateways[r.gateway_id] = _Gateway(r.interval_s, now, r.ts)
        gw.heard, gw.interval, gw.ts = now, r.interval_s, r.ts
        if r.kind == "bye":
            del self.gateways[r.gateway_id]
            for u in gw.users:
                self._unlist(u, r.gateway_id, now + self.grace, r.ts)
        elif r.kind == "delta":
            self._delta(gw, r, now)
        else:
            self._full_part(gw, r, now)

    def _delta(self, gw: _Gateway, r: GatewayReport, now: float) -> None:
        for u in r.users:
            gw.users.add(u)
            if gw.acc is not None:
                gw.acc.add(u)
            self._list(u, r.gateway_id, r.ts, announce=True)
        for u in r.gone:
            gw.users.discard(u)
            if gw.acc is not None:
                gw.acc.discard(u)
            self._unlist(u, r.gateway_id, now + self.grace, r.ts)

    def _full_part(self, gw: _Gateway, r: GatewayReport, now: float) -> None:
        if r.part == 0:
            gw.snapshot, gw.next_part, gw.acc = r.snapshot, 0, set()
        if gw.acc is None or r.snapshot != gw.snapshot or r.part != gw.next_part:
            gw.acc = None  # a part went missing: wait for the next snapshot
            return
        gw.acc.update(r.users)
        gw.next_part += 1
        if gw.next_part < r.parts:
            return
        new, gw.acc = gw.acc, None
        old, gw.users = gw.users, new
        announce = self.warm(now)
        for u in new:
            self._list(u, r.gateway_id, r.ts, announce)
        for u in old - new:
            self._unlist(u, r.gateway_id, now + self.grace, r.ts)

    def _list(self, user: str, gateway: str, ts: str, announce: bool) -> None:
        self.where.setdefault(user, set()).add(gateway)
        if user in self.online:
            self.leaving.pop(user, None)  # back within the grace: nothing happened
            self.online[user] = max(ts, self.online[user])
            return
        self.online[user] = ts
        if announce:
            self._change(Change(user, "online", ts))

    def _unlist(self, user: str, gateway: str, due: float, ts: str) -> None:
        gws = self.where.get(user)
        if gws is None:
            return
        gws.discard(gateway)
        if gws:
            return
        del self.where[user]
        if user in self.online:
            self.leaving[user] = (due, ts)

    # --- time ----------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Declare silent gateways dead; decide the offlines that are due (once warm)."""
        for gid, gw in list(self.gateways.items()):
            if now - gw.heard > self.dead_after * gw.interval:
                del self.gateways[gid]
                for u in gw.users:
                    self._unlist(u, gid, now, gw.ts)
        if not self.warm(now):
            return
        due = [(u, ts) for u, (at, ts) in self.leaving.items() if at <= now]
        for u, ts in due:
            del self.leaving[u]
            del self.online[u]
            self._change(Change(u, "offline", ts))

    def stale_online(self, stored: dict[str, str]) -> None:
        """After warm-up: users the durable store still marks online (``{user: last_seen}``)
        whom no gateway lists went offline while no replica was watching."""
        for u, ts in stored.items():
            if u not in self.online and u not in self.where and u not in self.pending:
                self._change(Change(u, "offline", ts))

    # --- output --------------------------------------------------------------------------
    def _change(self, c: Change) -> None:
        prev = self.pending.get(c.user_id)
        if prev is not None and prev.status != c.status:
            del self.pending[c.user_id]  # never published: the clients' view is unchanged
            return
        self.pending[c.user_id] = c

    def drain(self) -> list[Change]:
        out = list(self.pending.values())
        self.pending.clear()
        return out

    def requeue(self, changes: list[Change]) -> None:
        """Changes that could not be published: back in, unless a newer one is pending."""
        for c in changes:
            if c.user_id not in self.pending:
                self.pending[c.user_id] = c
