"""The fault schedule: per round, one replica of every service (a different one each round
while there are any left) is SIGKILLed, stays down for a seeded outage and is started again;
then NATS (same port and store directory) and PostgreSQL (same data directory) likewise.
After each restart the run waits until every user has had a message acknowledged (and,
after a media fault, an upload) before the next fault: each fault hits a recovered system.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat_devtools.chaos.config import SERVICES, ChaosConfig
from chat_devtools.chaos.workload import Workload
from chat_devtools.cluster import Cluster
from chat_devtools.services import ServiceProcess


@dataclass
class Fault:
    target: str
    kill: Callable[[], Any]
    start: Callable[[], Any]
    uploads: bool = False  # recovery also needs a new upload acknowledged


@dataclass
class FaultRecord:
    target: str
    at_s: float  # since the schedule started
    outage_s: float
    restart_s: float  # start() until ready
    recovered_s: float | None  # ready until every user progressed (None: not within the deadline)

    def __str__(self) -> str:
        rec = f"{self.recovered_s:.1f}s" if self.recovered_s is not None else "NOT RECOVERED"
        return (
            f"{self.target} at {self.at_s:.1f}s: down {self.outage_s:.1f}s, "
            f"ready in {self.restart_s:.1f}s, progress {rec}"
        )


def _replicas(c: Cluster, service: str) -> list[ServiceProcess]:
    return {
        "gateway": c.gateways,
        "messages": c.messages,
        "presence": c.presence,
        "search": c.search_replicas,
        "media": c.media_replicas,
    }[service]


def plan(c: Cluster, cfg: ChaosConfig, pg: Any = None) -> list[Fault]:
    """The seeded schedule for ``c`` (``pg``: a ``PostgresServer`` to crash, or None)."""
    rng = random.Random(f"faults-{cfg.seed}")
    order = {s: rng.sample(range(len(_replicas(c, s))), len(_replicas(c, s))) for s in SERVICES}
    faults: list[Fault] = []
    for r in range(cfg.rounds):
        for service in SERVICES:
            procs = _replicas(c, service)
            if not procs:
                continue
            p = procs[order[service][r % len(procs)]]
            faults.append(Fault(p.name, p.kill, p.start, uploads=service == "media" and cfg.upload_every > 0))
        if cfg.infra and c.nats is not None:
            faults.append(Fault("nats", c.nats.kill, c.nats.start))
        if cfg.infra and pg is not None:
            faults.append(Fault("postgres", pg.kill, pg.start))
    return faults


async def run_schedule(w: Workload, faults: list[Fault], cfg: ChaosConfig) -> list[FaultRecord]:
    rng = random.Random(f"outages-{cfg.seed}")
    t0 = time.monotonic()
    out: list[FaultRecord] = []
    for f in faults:
        at = time.monotonic() - t0
        outage = rng.uniform(*cfg.outage_s)
        await asyncio.to_thread(f.kill)
        await asyncio.sleep(outage)  # the outage itself: part of the scenario, not a wait
        t1 = time.monotonic()
        await asyncio.to_thread(f.start)
        restart = time.monotonic() - t1
        t2 = time.monotonic()
        ok = await w.progressed(w.counts(), f.uploads, cfg.budget(w.baseline_s))
        out.append(FaultRecord(f.target, at, outage, restart, time.monotonic() - t2 if ok else None))
        if not ok:
            break  # the checker reports what was lost; later faults would only add noise
    return out
