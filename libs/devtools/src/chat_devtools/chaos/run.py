"""One chaos run on a started cluster: users chat, the schedule runs, the checker judges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from chat_proto import subjects

from chat_devtools.chaos.check import Report, check
from chat_devtools.chaos.config import ChaosConfig
from chat_devtools.chaos.faults import plan, run_schedule
from chat_devtools.chaos.workload import Workload
from chat_devtools.cluster import Cluster
from chat_devtools.eventlog import conv_events


async def run_chaos(c: Cluster, cfg: ChaosConfig, pg: Any = None) -> Report:
    """``c``: started, with its ``nats`` (a ``NatsServer``) when NATS is to be crashed;
    ``pg``: the ``PostgresServer`` the cluster's databases live on, to crash (or None).
    Returns the report; ``report.ok`` is the verdict, ``report.problems`` says why not."""
    if cfg.users < cfg.convs + 1 or cfg.users < 3:
        raise ValueError("need at least 3 users and one more user than conversations")
    t0 = time.monotonic()
    r = Report(cfg.seed)
    w = Workload(c.gateway_urls, cfg)
    try:
        await w.setup()
        w.start()
        if not await w.progressed(w.counts(), False, cfg.budget(w.baseline_s)):
            r.problem("the users made no progress before any fault")
            return r
        await asyncio.sleep(cfg.chat_before_s)  # chatting on the healthy system (scenario time)
        r.faults = await run_schedule(w, plan(c, cfg, pg), cfg)
        r.problems += [f"no progress after a fault: {f}" for f in r.faults if f.recovered_s is None]
        await asyncio.sleep(cfg.chat_before_s)
        await w.stop()
        r.problems += [f"{p.name} is not running after the run" for p in c.dead()]
        await check(w, r)
        if r.searchable < r.acked:
            r.notes.append(await search_consumer_state(c, r.unsearchable[:3]))
            r.notes += [f"fault: {f}" for f in r.faults]
    finally:
        await w.close()
        r.duration_s = time.monotonic() - t0
    return r


async def search_consumer_state(c: Cluster, missing: Sequence[tuple[str, int]] = ()) -> str:
    """The index consumer as NATS sees it (for a run where messages were not searchable:
    still pending or waiting for redelivery, or settled and so lost on the way), and for
    each of ``missing`` (conv, seq) whether its event is in the stream at all (never
    published, or published and not indexed)."""
    try:
        nc = await c.connect_nats()
        try:
            js = nc.jetstream()
            info = await js.consumer_info(subjects.EVT_STREAM, subjects.SEARCH_EVENTS_CONSUMER)
            stream = await js.stream_info(subjects.EVT_STREAM)
            where = [f"{conv}:{seq} {await _in_stream(js, conv, seq)}" for conv, seq in missing]
        finally:
            await nc.close()
    except Exception as exc:
        return f"search consumer: not readable ({exc!r})"
    floor = info.ack_floor.stream_seq if info.ack_floor else None
    delivered = info.delivered.stream_seq if info.delivered else None
    return (
        f"search consumer: pending {info.num_pending}, ack pending {info.num_ack_pending}, "
        f"redelivered {info.num_redelivered}, ack floor {floor}, delivered {delivered}, "
        f"stream last seq {stream.state.last_seq}, ack_wait {info.config.ack_wait}s"
        + (f"; missing events: {'; '.join(where)}" if where else "")
    )


async def _in_stream(js: Any, conv: str, seq: int) -> str:
    """Where the event ``conv:seq`` is in the event stream (a diagnostic)."""
    for p in await conv_events(js, conv, within_s=5):
        if p.seq == seq:
            return f"in the stream at {p.stream_seq}, published {p.at}"
    return "not in the stream"
