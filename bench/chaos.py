"""Scale-out under chaos, the full matrix (operations issue): for each of --runs seeds, a
fresh system on loopback — NATS (JetStream), PostgreSQL (durable commits), auth and
--replicas processes of every other service (gateway, messages, presence, search, media) —
while seeded SDK users chat over every gateway, attach fresh uploads and search. Each round
SIGKILLs and restarts one replica of every service in turn (a different replica per round,
so with 2 replicas and 2 rounds every process is killed once), then NATS (same port and
store) and PostgreSQL (same data directory); after each restart the run waits until every
user had a message acknowledged.

The checker (``chat_devtools.chaos``) then counts: acknowledged messages lost, duplicated,
reordered (history, and each client's own view of it), presence convergence (the last user
leaves: everyone else online, it offline), acknowledged messages searchable, acknowledged
uploads retrievable with their size. Prints one table row per seed, and one JSON line per run.

Bounded: --runs ≤ 20, each run ≤ 15 minutes (then it is reported as failed). Loopback only:
every process is started here on 127.0.0.1.

    .venv/bin/python bench/chaos.py --runs 5
    .venv/bin/python bench/chaos.py --runs 1 --seed 7 --backend sqlite   # no PostgreSQL fault
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from chat_devtools.chaos import ChaosConfig, Report, chaos_env, run_chaos
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.postgres import PostgresServer
from chat_devtools.testing import NO_AUTH_BUDGETS
from chat_search.indexer import consumer_config

RUN_TIMEOUT_S = 900.0
ENV = {
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
    "GATEWAY_DRAIN_S": "0.5",
    **NO_AUTH_BUDGETS,
    **chaos_env(),
}
COLUMNS = [
    "seed",
    "acked",
    "unacked/refused",
    "lost",
    "duplicated",
    "reordered",
    "views ok",
    "presence",
    "searchable",
    "uploads",
    "faults",
    "duration",
]


def one_run(args: argparse.Namespace, seed: int, pg: PostgresServer | None, base: Path) -> Report:
    d = base / f"run-{seed}"
    nats = NatsServer(d / "nats", accounts=[ChatAccount.generate()]).start()
    urls: dict[str, str] = {}
    if pg is not None:
        prefix = f"chaos_{seed}_{uuid.uuid4().hex[:8]}"
        urls = {svc: pg.create_database(f"{prefix}_{svc}") for svc in ("auth", "messages", "presence", "media")}
    n = args.replicas
    c = Cluster(
        nats.url,
        nats=nats,
        database_urls=urls or None,
        data_dir=d,
        log_dir=d / "logs",
        gateways=n,
        messages_replicas=n,
        presence_replicas=n,
        media_replicas=n,
        search_replicas=n,
        environment="test",
        log_level="WARNING",
        env=ENV,
    )
    cfg = ChaosConfig(
        seed=seed,
        users=args.users,
        convs=args.convs,
        rounds=args.rounds,
        search_redelivery_s=float(consumer_config().ack_wait or 0),
    )
    try:
        c.start()
        report = asyncio.run(asyncio.wait_for(run_chaos(c, cfg, pg=pg), RUN_TIMEOUT_S))
    except TimeoutError:
        report = Report(seed)
        report.problem(f"the run did not finish within {RUN_TIMEOUT_S:.0f}s")
    finally:
        c.stop(parallel=True)
        nats.stop()
    return report


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="seeds seed..seed+runs-1 (≤ 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--replicas", type=int, default=2, help="of every service but auth (1..4)")
    ap.add_argument("--rounds", type=int, default=2, help="each kills one replica of every service, NATS, PostgreSQL")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--convs", type=int, default=3)
    args = ap.parse_args()
    if not 1 <= args.runs <= 20 or not 1 <= args.replicas <= 4 or not 1 <= args.rounds <= 4:
        ap.error("--runs 1..20, --replicas 1..4, --rounds 1..4")
    rows: list[dict[str, Any]] = []
    failed = 0
    with tempfile.TemporaryDirectory(prefix="chat-bench-chaos-") as tmp:
        pg = PostgresServer().start() if args.backend == "postgres" else None
        try:
            for seed in range(args.seed, args.seed + args.runs):
                t0 = time.monotonic()
                report = one_run(args, seed, pg, Path(tmp))
                rows.append(report.row())
                failed += not report.ok
                out = {**report.row(), "ok": report.ok, "problems": report.problems, "notes": report.notes}
                out["fault_log"] = [str(f) for f in report.faults]
                out["wall_s"] = round(time.monotonic() - t0, 1)
                print(json.dumps(out), flush=True)
        finally:
            if pg is not None:
                pg.destroy()
    print(f"\n{args.backend}, {args.replicas} replicas of each service, {args.rounds} rounds, {args.users} users\n")
    print(table(rows))
    print(f"\n{len(rows) - failed}/{len(rows)} runs clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
