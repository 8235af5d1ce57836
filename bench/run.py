"""Benchmark harness: starts NATS, the database (SQLite files or a throwaway PostgreSQL with
durable commits), auth, messages and 2 gateways on loopback, then runs ``loadgen.py`` as its
own process ``--repeat`` times and prints each run and the medians. Optionally profiles one
service process with py-spy during the first run. ``--scenario membership`` runs
``membership.py`` instead (membership propagation and listing many conversations).

    .venv/bin/python bench/run.py --backend postgres --clients 10 --rate 500 --duration 20
    .venv/bin/python bench/run.py --backend postgres --clients 4 --rate 2000 --profile messages
    .venv/bin/python bench/run.py --backend postgres --scenario membership --repeat 3
    .venv/bin/python bench/run.py --scenario presence --clients 5000 --duration 60   # presence.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from chat_devtools.cluster import Cluster, sqlite_urls
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.postgres import PostgresServer
from chat_devtools.testing import NO_AUTH_BUDGETS, NO_RATE_LIMITS

HERE = Path(__file__).parent
# The gateway's per-user send bucket (250 + 10/s) and per-connection frame bucket would cap
# every load-generator client; a benchmark measures the system, so they are off unless
# --env sets them.
BENCH_ENV = {**NO_RATE_LIMITS, **NO_AUTH_BUDGETS}


def service_env(args: argparse.Namespace) -> dict[str, str]:
    return {**BENCH_ENV, **dict(e.split("=", 1) for e in args.env)}


def _proc_tree_cpu() -> tuple[dict[int, int], dict[int, float]]:
    """(ppid of each process, its user+system CPU seconds) from /proc."""
    tick = float(os.sysconf("SC_CLK_TCK"))
    ppid: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / tick
    return ppid, cpu


def cpu_snapshot(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and all its descendants."""
    ppid, cpu = _proc_tree_cpu()
    children: dict[int, list[int]] = {}
    for pid, parent in ppid.items():
        children.setdefault(parent, []).append(pid)
    out: dict[str, float] = {}
    for name, root in groups.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            total += cpu.get(pid, 0.0)
            todo.extend(children.get(pid, []))
        out[name] = total
    return out


def start_backend(kind: str, tmp: Path, slow_ms: int | None = None) -> tuple[dict[str, str], PostgresServer | None]:
    if kind == "sqlite":
        return sqlite_urls(tmp / "db"), None
    settings = {"log_min_duration_statement": str(slow_ms)} if slow_ms is not None else None
    pg = PostgresServer(settings=settings).start()  # its own dir, handed to the postgres user when root
    return {svc: pg.create_database(f"bench_{svc}") for svc in ("auth", "messages")}, pg


def profile(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not installed (pip install py-spy); no profile", file=sys.stderr)
        return None
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(raw: Path, top: int = 25) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: self time per function, and inclusive time of the
    project's own functions (``chat_*``), as % of samples."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():  # a wrapped or truncated line
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            if "chat_" in f:
                incl[f] = incl.get(f, 0) + n

    def pct(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return pct(own), pct(incl)


def _metric_sums(text: str, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        for n in names:
            if line.startswith(n + " ") or line.startswith(n + "{"):
                out[n] = out.get(n, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def server_metrics(cluster: Cluster) -> dict[str, float]:
    """Cumulative server-side averages (since start): batch size and time, gateway send time."""
    import httpx

    m = _metric_sums(
        httpx.get(cluster.messages[0].base_url + "/metrics").text,
        (
            "chat_messages_batch_size_sum",
            "chat_messages_batch_size_count",
            "chat_messages_batch_seconds_sum",
            "chat_messages_batch_seconds_count",
            "chat_messages_commit_seconds_sum",
            "chat_messages_commit_seconds_count",
            "chat_messages_publish_seconds_sum",
            "chat_messages_publish_seconds_count",
            "chat_rpc_requests_total",
        ),
    )
    g: dict[str, float] = {}
    for gw in cluster.gateways:
        for k, v in _metric_sums(
            httpx.get(gw.metrics_url + "/metrics").text,
            ("chat_gateway_send_seconds_sum", "chat_gateway_send_seconds_count", "chat_gateway_gaps_total"),
        ).items():
            g[k] = g.get(k, 0.0) + v
    div = lambda a, b: round(a / b, 4) if b else 0.0  # noqa: E731
    return {
        "avg_batch_size": div(m.get("chat_messages_batch_size_sum", 0), m.get("chat_messages_batch_size_count", 0)),
        "avg_batch_ms": 1000
        * div(m.get("chat_messages_batch_seconds_sum", 0), m.get("chat_messages_batch_seconds_count", 0)),
        "avg_commit_ms": 1000
        * div(m.get("chat_messages_commit_seconds_sum", 0), m.get("chat_messages_commit_seconds_count", 0)),
        "avg_publish_ms": 1000
        * div(m.get("chat_messages_publish_seconds_sum", 0), m.get("chat_messages_publish_seconds_count", 0)),
        "messages_rpcs": m.get("chat_rpc_requests_total", 0),
        "gateway_gaps": g.get("chat_gateway_gaps_total", 0),
        "avg_gateway_send_ms": 1000
        * div(g.get("chat_gateway_send_seconds_sum", 0), g.get("chat_gateway_send_seconds_count", 0)),
    }


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def bench_system(args: argparse.Namespace) -> Iterator[Cluster]:
    """NATS, the database and a started two-gateway cluster in a temp dir; all stopped after."""
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        pg = None
        cluster = None
        try:
            urls, pg = start_backend(args.backend, tmp)
            cluster = Cluster(
                nats.url,
                nats=nats,
                database_urls=urls,
                data_dir=tmp,
                log_dir=tmp / "logs",
                gateways=2,
                log_level="WARNING",
                env=service_env(args),
                media=args.with_search_media,
                search=args.with_search_media,
            ).start()
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            if pg is not None:
                pg.stop()
                pg.destroy()
            nats.stop()


def run_soak(args: argparse.Namespace) -> None:
    """soak.py once against a fresh system; gateway RSS sampled every second meanwhile."""
    with bench_system(args) as cluster:
        pids = [g.pid or 0 for g in cluster.gateways]
        base = [rss_kib(p) for p in pids]
        peak = list(base)
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "soak.py"),
                *[a for u in cluster.gateway_urls for a in ("--gateway", u)],
                "--clients",
                str(args.clients),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.duration),
                "--churn",
                str(args.churn),
                "--convs",
                str(args.convs_soak),
            ],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        connected: list[int] = []
        lines: list[str] = []

        def read_output() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("CONNECTED"):
                    time.sleep(1.0)
                    connected.extend(rss_kib(p) for p in pids)

        reader = threading.Thread(target=read_output, daemon=True)
        reader.start()
        deadline = time.monotonic() + args.duration + 900
        while proc.poll() is None and time.monotonic() < deadline:
            peak = [max(a, rss_kib(p)) for a, p in zip(peak, pids, strict=True)]
            time.sleep(1.0)
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=30)
        res = json.loads(lines[-1])
        per_gw = args.clients / len(pids)
        res["gateway_rss_mib"] = {
            "before": [round(b / 1024, 1) for b in base],
            "all_connected": [round(c / 1024, 1) for c in connected],
            "peak": [round(p / 1024, 1) for p in peak],
        }
        if connected:
            # idle connections, authenticated and subscribed, before any traffic
            res["gateway_kib_per_connection"] = round(
                sum(c - b for c, b in zip(connected, base, strict=True)) / len(pids) / per_gw, 1
            )
        print(json.dumps(res), flush=True)


def run_membership(args: argparse.Namespace) -> None:
    with bench_system(args) as cluster:
        results = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "membership.py"),
                    *[a for u in cluster.gateway_urls for a in ("--gateway", u)],
                    "--rounds",
                    str(args.rounds),
                    "--convs",
                    str(args.convs),
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=900,
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(res)
            print(json.dumps(res), flush=True)
        prop = [r["propagation"] for r in results]
        lst = [r["listing"] for r in results]
        med = {
            "backend": args.backend,
            "runs": len(results),
            "add_p50_ms": statistics.median(p["add_ms"]["p50"] for p in prop),
            "add_p99_ms": statistics.median(p["add_ms"]["p99"] for p in prop),
            "remove_p50_ms": statistics.median(p["remove_ms"]["p50"] for p in prop),
            "remove_p99_ms": statistics.median(p["remove_ms"]["p99"] for p in prop),
            "remove_max_ms": max(p["remove_ms"]["max"] for p in prop),
            "leaked": sum(p["leaked"] for p in prop),
            "list_convs": args.convs,
            "list_p50_ms": statistics.median(x["list_ms"]["p50"] for x in lst),
            "list_p99_ms": statistics.median(x["list_ms"]["p99"] for x in lst),
        }
        print("MEDIANS " + json.dumps(med), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--messages-replicas", type=int, default=1)
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra service setting, e.g. MESSAGES_BATCH_SIZE=128 (repeat)",
    )
    ap.add_argument("--pg-log-slow-ms", type=int, default=None, help="log statements slower than this")
    ap.add_argument("--profile", choices=["messages", "gateway", "auth"], default=None)
    ap.add_argument("--scenario", choices=["send", "membership", "soak", "presence"], default="send")
    ap.add_argument(
        "--with-search-media",
        action="store_true",
        help="also run the search and media services (search indexes every message: CPU the chat path then shares)",
    )
    ap.add_argument("--closed", action="store_true", help="send: closed loop (each client waits for its ack)")
    ap.add_argument("--send-convs", type=int, default=1, help="send: channels the clients are spread over")
    ap.add_argument("--churn", type=float, default=0.02, help="soak: share of clients reconnecting per second")
    ap.add_argument("--convs-soak", type=int, default=5, help="soak: conversations")
    ap.add_argument("--rounds", type=int, default=200, help="membership: add/remove rounds")
    ap.add_argument("--convs", type=int, default=1000, help="membership: conversations of the listing user")
    args = ap.parse_args()
    if args.scenario == "send" and not 1 <= args.send_convs <= args.clients:
        ap.error("--send-convs must be between 1 and --clients (each channel needs a member who sends)")
    if args.scenario == "membership":
        run_membership(args)
        return
    if args.scenario == "soak":
        run_soak(args)
        return
    if args.scenario == "presence":  # presence.py starts its own system (SQLite); --clients users
        cmd = [
            sys.executable,
            str(HERE / "presence.py"),
            "--users",
            str(args.clients),
            "--churn",
            str(args.churn),
            "--duration",
            str(args.duration),
        ]
        sys.exit(subprocess.call(cmd))

    with tempfile.TemporaryDirectory(prefix="chat-bench-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        pg = None
        cluster = None
        try:
            urls, pg = start_backend(args.backend, tmp, args.pg_log_slow_ms)
            cluster = Cluster(
                nats.url,
                nats=nats,
                database_urls=urls,
                data_dir=tmp,
                log_dir=tmp / "logs",
                gateways=2,
                messages_replicas=args.messages_replicas,
                log_level="WARNING",
                env=service_env(args),
                media=args.with_search_media,
                search=args.with_search_media,
            ).start()
            results = []
            for i in range(args.repeat):
                spy = None
                if i == 0 and args.profile:
                    proc = {"messages": cluster.messages[0], "gateway": cluster.gateways[0], "auth": cluster.auth}[
                        args.profile
                    ]
                    spy = profile(proc.pid or 0, int(args.duration), tmp / "profile.txt")
                groups = {"nats": nats.proc.pid if nats.proc else 0, "auth": cluster.auth.pid or 0}
                groups |= {f"messages{j}": p.pid or 0 for j, p in enumerate(cluster.messages)}
                groups |= {f"gateway{j}": p.pid or 0 for j, p in enumerate(cluster.gateways)}
                if pg is not None:
                    groups["postgres"] = pg.postmaster_pid() or 0
                cpu0 = cpu_snapshot(groups)
                gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.monotonic()
                out = subprocess.run(
                    [
                        sys.executable,
                        str(HERE / "loadgen.py"),
                        *[a for u in cluster.gateway_urls for a in ("--gateway", u)],
                        "--clients",
                        str(args.clients),
                        "--rate",
                        str(args.rate),
                        "--duration",
                        str(args.duration),
                        "--convs",
                        str(args.send_convs),
                        *(["--closed"] if args.closed else []),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=args.duration + 120,
                )
                res = json.loads(out.stdout.strip().splitlines()[-1])
                res["server"] = server_metrics(cluster)
                cpu1 = cpu_snapshot(groups)
                gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                # Share of one core over the whole loadgen run (its set-up and drain included).
                span = time.monotonic() - t0
                res["cpu_pct"] = {k: round(100 * (cpu1[k] - cpu0[k]) / span) for k in groups}
                res["cpu_pct"]["loadgen"] = round(
                    100 * (gen1.ru_utime + gen1.ru_stime - gen0.ru_utime - gen0.ru_stime) / span
                )
                results.append(res)
                print(json.dumps(res), flush=True)
                if spy is not None:
                    spy.wait(timeout=args.duration + 30)
                    if (tmp / "profile.txt").exists():
                        own, incl = summarize_profile(tmp / "profile.txt")
                        print(f"profile of {args.profile}, self time (% of samples):")
                        for fn, share in own:
                            print(f"  {share:5.1f}  {fn}")
                        print(f"profile of {args.profile}, inclusive time of project functions:")
                        for fn, share in incl:
                            print(f"  {share:5.1f}  {fn}")
            med = {
                "backend": args.backend,
                "clients": args.clients,
                "convs": args.send_convs,
                "closed_loop": args.closed,
                "offered_rate": None if args.closed else args.rate,
                "runs": len(results),
                "persisted_per_s_steady": statistics.median(r["persisted_per_s_steady"] for r in results),
                "ack_p50_ms": statistics.median(r["ack_ms"]["p50"] for r in results),
                "ack_p99_ms": statistics.median(r["ack_ms"]["p99"] for r in results),
                "recv_p50_ms": statistics.median(r["recv_ms"]["p50"] for r in results),
                "recv_p99_ms": statistics.median(r["recv_ms"]["p99"] for r in results),
                "lost_deliveries": sum(r["deliveries_expected"] - r["deliveries"] for r in results),
                "unacked": sum(r["sent"] - r["acked"] for r in results),
            }
            print("MEDIANS " + json.dumps(med), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
            if pg is not None:
                pg.stop()
                if args.pg_log_slow_ms is not None and pg.log_file.exists():
                    for line in pg.log_file.read_text().splitlines():
                        if "duration:" in line:
                            print(line[:300])
                pg.destroy()
            nats.stop()


if __name__ == "__main__":
    main()
