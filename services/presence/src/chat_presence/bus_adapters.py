"""The ports of ``ports.py`` over NATS, and the subscription to the gateways' reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chat_bus.rpc import RpcClient
from chat_proto import ops, subjects
from chat_proto.messages_api import PresenceConvs, SharedWith
from chat_proto.presence import GatewayReport
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter
from pydantic import ValidationError

from chat_presence.service import PresenceService
from chat_presence.settings import PresenceSettings
from chat_presence.state import PresenceState
from chat_presence.store import LastSeenStore

log = logging.getLogger("chat.presence.bus")
BAD_REPORTS = Counter("chat_presence_bad_reports_total", "Gateway reports that did not parse")
CONVS_LOOKUPS = Counter("chat_presence_convs_lookups_total", "Users' fanout conversations", ["source"])
RPC_CHUNK = 1000


class NatsFanout:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc

    async def publish(self, conv: str, frame: bytes) -> None:
        await self.nc.publish(subjects.eph_conv(conv), frame)


class MessagesDirectory:
    """Asks the messages service; each user's fanout conversations are cached ``cache_s``
    (a conversation joined meanwhile gets that user's presence frames that much later)."""

    def __init__(
        self, rpc: RpcClient, max_members: int, cache_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rpc = rpc
        self.max_members = max_members
        self.cache_s = cache_s
        self.clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def presence_convs(self, users: list[str]) -> dict[str, list[str]]:
        now = self.clock()
        out: dict[str, list[str]] = {}
        missing = []
        for u in dict.fromkeys(users):
            hit = self._cache.get(u)
            if hit is not None and hit[0] > now:
                out[u] = hit[1]
            else:
                missing.append(u)
        CONVS_LOOKUPS.labels("cache").inc(len(out))
        CONVS_LOOKUPS.labels("rpc").inc(len(missing))
        for i in range(0, len(missing), RPC_CHUNK):
            req = PresenceConvs(user_ids=missing[i : i + RPC_CHUNK], max_members=self.max_members)
            res = await self.rpc.request(ops.messages.PRESENCE_CONVS, req)
            for u, convs in res.convs.items():
                out[u] = list(convs)
                self._cache[u] = (now + self.cache_s, out[u])
        if len(self._cache) > 2 * max(1000, len(out)):
            self._cache = {u: v for u, v in self._cache.items() if v[0] > now}
        return out

    async def shared_with(self, user: str, others: list[str]) -> list[str]:
        res = await self.rpc.request(ops.messages.SHARED_WITH, SharedWith(user_id=user, user_ids=others))
        return res.user_ids


class ReportListener:
    """Every replica hears every gateway (no queue group)."""

    def __init__(self, nc: NATS, on_report: Callable[[GatewayReport], None]) -> None:
        self.nc = nc
        self.on_report = on_report
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(subjects.PRESENCE_HB_ALL, cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass  # closing anyway
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        try:
            report = GatewayReport.model_validate_json(msg.data)
        except ValidationError:
            BAD_REPORTS.inc()
            return
        self.on_report(report)


def presence_service(s: PresenceSettings, nc: NATS, store: LastSeenStore) -> PresenceService:
    """The service wired to NATS (fan-out, the messages service's directory) and its store."""
    clock = time.monotonic
    state = PresenceState(
        now=clock(), grace_s=s.offline_grace_s, dead_after=s.dead_after_intervals, warmup_s=s.warmup_s or 0.0
    )
    directory = MessagesDirectory(RpcClient(nc, s.rpc_timeout_s), s.max_fanout_members, s.convs_cache_s, clock)
    return PresenceService(
        state,
        NatsFanout(nc),
        directory,
        store,
        clock=clock,
        coalesce_s=s.coalesce_s,
        persist_interval_s=s.persist_interval_s,
    )
