"""Scale-out under chaos: seeded clients chat, upload and search over several replicas of
every service while one replica of each is SIGKILLed and restarted in turn, then NATS and
PostgreSQL; a checker then proves what docs/guarantees.md promises.

- :mod:`.workload`: the users (``chat_sdk.ChatClient`` over every gateway), their sends
  (idempotent retries with the same ``client_msg_id``), uploads and searches, and what each
  of them was acknowledged;
- :mod:`.faults`: the schedule (kill, outage, restart, wait until every user made progress);
- :mod:`.check`: history against the acks (lost, duplicated, reordered), each client's view,
  presence convergence, searchability, retrievability of uploads.

Used by ``tests/integration/test_chaos.py`` (a short profile) and ``bench/chaos.py`` (the
full matrix over several seeds)::

    report = await run_chaos(cluster, ChaosConfig(seed=1), pg=postgres_server)
    assert report.ok, report.problems
"""

from __future__ import annotations

from chat_devtools.chaos.check import Report, check
from chat_devtools.chaos.config import ChaosConfig, chaos_env
from chat_devtools.chaos.faults import FaultRecord, plan, run_schedule
from chat_devtools.chaos.run import run_chaos
from chat_devtools.chaos.workload import Workload

__all__ = [
    "ChaosConfig",
    "FaultRecord",
    "Report",
    "Workload",
    "chaos_env",
    "check",
    "plan",
    "run_chaos",
    "run_schedule",
]
