"""Idle connections: the gateway's memory per authenticated, idle WebSocket connection.

Starts a real stack on loopback (NATS from the wheel, SQLite, auth, messages, presence and
two gateways; media and search off; cheap password hashing and the /v1/auth budgets off,
as the other benches; the per-connection and per-user rate limits keep their defaults:
idle clients never meet them). Gateway-0 is the one measured: it only ever serves the
idle WebSockets. Gateway-1 serves the REST calls of the set-up and the presence checks.

Set-up: max(--connections) users, in groups of --group-size consecutive users (so each
user shares a conversation with a few others, whose presence it may see). Then, --repeat
times, with a fresh gateway-0 process (restarted, so every run starts from the same heap):
1. warm-up: a few connections authenticate and close (first-use costs: signing keys,
   imports, caches), then the **baseline**: the gateway process's memory (RSS from
   /proc/<pid>/smaps_rollup, with PSS and USS = private clean + private dirty);
2. for each step of --connections (ascending, e.g. 1000,10000): connections are opened up
   to that count, spread over --procs client processes (``idle_worker.py``: uvloop and
   `websockets` sans-I/O; each sends ``auth`` and then nothing but pongs to the gateway's
   pings), the gateway's ``chat_gateway_connections`` gauge must reach it, then they sit
   idle for --settle-s (several heartbeat intervals) and the gateway's memory is read
   again: **per connection = (memory - baseline) / connections**. Checked on the way:
   no connection closed, every connection got the pings of the window (heartbeats flow
   both ways: a connection that did not answer would be dropped after 3 x heartbeat_s),
   and presence reports every connected user online (REST ``GET /v1/presence`` through
   gateway-1, one query per group, by one of its members) and users not connected yet not
   online. The gateway's CPU over the idle window is reported too (the heartbeats' cost);
3. after the last step, --hold-s more seconds idle (0: none), memory sampled on the way,
   checked the same way at its end.

Prints one JSON line per step, then a table of medians over the repeats.

--profile DIR: one more run (not in the results) with gateway-0 started through
``idle_probe.py`` (tracemalloc on, a snapshot on SIGUSR1): snapshots at the baseline and
after each step's settle, and their difference per connection by source line, by file and
by allocation traceback, with the live objects per connection by type and the asyncio
tasks per connection by coroutine.

Bounded: every wait has a timeout, the client processes and the run have deadlines
(--max-minutes, a watchdog), Ctrl-C or SIGTERM stop everything. Loopback only. The hard
RLIMIT_NOFILE must allow the sockets: the soft limit is raised to it here, and the
gateway inherits it.

    .venv/bin/python bench/idle.py --connections 1000,10000 --repeat 3
    .venv/bin/python bench/idle.py --connections 10000 --repeat 1 --hold-s 600
    .venv/bin/python bench/idle.py --connections 1000,10000 --repeat 0 --profile /tmp/idle-prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop
import websockets
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.testing import NO_AUTH_BUDGETS

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from aio_util import gather_limited  # noqa: E402
from fanout import cpu_seconds  # noqa: E402
from idle_report import print_profile, print_table, summarize  # noqa: E402

PASSWORD = "bench-password-1"
ENV = {
    **NO_AUTH_BUDGETS,
    "AUTH_ENVIRONMENT": "test",
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
}
ACCESS_TTL_S = 900  # the longest access token auth issues: connections close 4003 then
WARMUP_CONNECTIONS = 8


def now() -> float:
    return time.monotonic()


# --- the gateway's memory -------------------------------------------------------------------
def memory(pid: int) -> dict[str, int]:
    """KiB: RSS, PSS and USS (private clean + dirty) of one process, from smaps_rollup."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def gauge(metrics_url: str, name: str) -> float:
    text = httpx.get(metrics_url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


# --- client processes -----------------------------------------------------------------------
class Workers:
    """--procs ``idle_worker.py`` processes; connections are handed out round-robin."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    @classmethod
    async def start(cls, n: int, deadline_s: float) -> Workers:
        procs = []
        for _ in range(n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "idle_worker.py"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,
            )
            procs.append(proc)
        self = cls(procs)
        try:
            for proc in procs:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write((json.dumps({"deadline_s": deadline_s}) + "\n").encode())
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                if line.strip() != b"READY":
                    raise RuntimeError(f"client process failed: {line!r}")
        except BaseException:
            await self.stop()
            raise
        return self

    async def _ask(self, lines: list[bytes], timeout: float) -> list[bytes]:
        for p, line in zip(self.procs, lines, strict=True):
            assert p.stdin is not None
            p.stdin.write(line)
        out = []
        for p in self.procs:
            assert p.stdout is not None
            out.append(await asyncio.wait_for(p.stdout.readline(), timeout))
        return out

    async def open(self, targets: list[tuple[str, str]]) -> dict[str, int]:
        k = len(self.procs)
        lines = [b"open " + json.dumps(targets[i::k]).encode() + b"\n" for i in range(k)]
        res = {"connected": 0, "failed": 0}
        for line in await self._ask(lines, 600):
            if not line.startswith(b"OPENED "):
                raise RuntimeError(f"client process failed: {line!r}")
            for key, v in json.loads(line[7:]).items():
                res[key] += v
        return res

    async def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"open": 0, "closes": {}, "frames": {}, "pings_min": None, "pings_total": 0}
        for line in await self._ask([b"report\n"] * len(self.procs), 60):
            r = json.loads(line)
            out["open"] += r["open"]
            for key in ("closes", "frames"):
                for k, v in r[key].items():
                    out[key][k] = out[key].get(k, 0) + v
            if r["open"]:
                low = r["pings"]["min"]
                out["pings_min"] = low if out["pings_min"] is None else min(out["pings_min"], low)
            out["pings_total"] += r["pings"]["total"]
        return out

    async def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(Exception):
                assert p.stdin is not None
                p.stdin.write(b"quit\n")
                p.stdin.close()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                p.kill()
                await p.wait()


# --- users ----------------------------------------------------------------------------------
@dataclass
class Users:
    names: list[str]
    ids: list[str]
    tokens: list[str]
    group_size: int
    logged_in_at: float = 0.0


async def login(http: httpx.AsyncClient, name: str) -> tuple[str, str]:
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return r.json()["user"]["id"], r.json()["access_token"]


async def setup_users(base: str, n: int, group_size: int) -> Users:
    """n users; each block of ``group_size`` consecutive users is one group."""
    tag = uuid.uuid4().hex[:6]
    names = [f"id{tag}x{i}" for i in range(n)]
    t0 = now()  # the tokens' age counts from here
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:

        async def user(name: str) -> tuple[str, str]:
            r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            return await login(http, name)

        pairs = await gather_limited(32, [user(name) for name in names])
        users = Users(names, [p[0] for p in pairs], [p[1] for p in pairs], group_size, t0)

        async def group(i: int) -> None:
            members = users.ids[i + 1 : i + group_size]
            if not members:
                return
            r = await http.post(
                "/v1/conversations",
                json={"kind": "group", "members": members},
                headers={"Authorization": f"Bearer {users.tokens[i]}"},
            )
            r.raise_for_status()

        if group_size > 1:
            await gather_limited(32, [group(i) for i in range(0, n, group_size)])
    return users


async def fresh_tokens(base: str, users: Users, needed_s: float) -> None:
    """Log everyone in again unless the tokens outlive the next ``needed_s`` seconds."""
    if now() - users.logged_in_at + needed_s < ACCESS_TTL_S - 30:
        return
    t0 = now()
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        pairs = await gather_limited(32, [login(http, name) for name in users.names])
    users.tokens = [p[1] for p in pairs]
    users.logged_in_at = t0


async def presence_check(base: str, users: Users, n: int) -> dict[str, int]:
    """Users [0, n) are connected: each must be online; a group beyond n must not be."""
    gs = max(1, users.group_size)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def block(i: int, end: int) -> list[str]:
            ids = users.ids[i:end]
            r = await http.get(
                "/v1/presence",
                params={"user_ids": ",".join(ids)},
                headers={"Authorization": f"Bearer {users.tokens[i]}"},
            )
            r.raise_for_status()
            return [e["user_id"] for e in r.json()["presence"] if e["status"] == "online"]

        online = await gather_limited(16, [block(i, min(i + gs, n)) for i in range(0, n, gs)])
        stray = await block(n, min(n + gs, len(users.ids))) if n < len(users.ids) else []
    return {
        "online": sum(len(o) for o in online),
        "connected": n,
        "online_not_connected": len(stray),
    }


# --- one run --------------------------------------------------------------------------------
async def warm_up(ws_url: str, users: Users) -> None:
    """A few connections authenticate and close: what the gateway builds on first use is
    in the baseline, not in the per-connection figure."""
    for tok in users.tokens[-WARMUP_CONNECTIONS:]:
        async with websockets.connect(ws_url, compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tok}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if first.get("type") != "auth_ok":
                raise RuntimeError(f"warm-up connection refused: {first}")


def run_estimate_s(args: argparse.Namespace) -> float:
    steps = sum(args.steps[-1:]) / 100  # connecting: ~100+ connections/s
    return 60 + steps + len(args.steps) * (args.settle_s + 30) + args.hold_s


async def one_run(args: argparse.Namespace, c: Cluster, users: Users, probe: Path | None) -> list[dict[str, Any]]:
    gw, rest = c.gateways[0], c.gateway_urls[1]
    await fresh_tokens(rest, users, run_estimate_s(args))
    if probe is not None:
        gw.module = "idle_probe"
        gw.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
        gw.env["IDLE_PROBE_DIR"] = str(probe)
    else:
        gw.module = "chat_gateway"
        gw.env.pop("IDLE_PROBE_DIR", None)
    await asyncio.to_thread(gw.restart, 120)
    pid = gw.pid or 0
    ws_url = c.ws_urls[0]
    await warm_up(ws_url, users)
    await asyncio.sleep(args.heartbeat_s + 4)  # warm-up closed, presence grace over
    base = memory(pid)
    snaps = 0
    if probe is not None:
        snaps = await probe_dump(pid, probe, snaps)
    print(f"baseline: {base} KiB", file=sys.stderr, flush=True)
    out: list[dict[str, Any]] = []
    workers = await Workers.start(args.procs, args.max_minutes * 60)
    try:
        prev = 0
        for n in args.steps:
            t0 = now()
            opened = await workers.open([(ws_url, tok) for tok in users.tokens[prev:n]])
            connect_s = now() - t0
            for _ in range(300):  # the gateway counts them once attached (<= 30 s)
                if await asyncio.to_thread(gauge, gw.metrics_url, "chat_gateway_connections") >= n:
                    break
                await asyncio.sleep(0.1)
            prev = n
            row = await idle_window(args, workers, pid, args.settle_s, n)
            row |= {"connections": n, "connect_s": round(connect_s, 1), "failed": opened["failed"]}
            row["presence"] = await presence_check(rest, users, n)
            row |= per_connection(base, row["memory"], n)
            if probe is not None:
                snaps = await probe_dump(pid, probe, snaps)
            out.append(row)
            print(json.dumps(row), flush=True)
        if args.hold_s > 0:
            n = args.steps[-1]
            row = await idle_window(args, workers, pid, args.hold_s, n)
            row |= {"connections": n, "hold": True}
            row["presence"] = await presence_check(rest, users, n)
            row |= per_connection(base, row["memory"], n)
            out.append(row)
            print(json.dumps(row), flush=True)
    finally:
        await workers.stop()
    if c.dead():
        raise RuntimeError(f"service(s) died: {c.dead()}")
    for r in out:
        r["baseline"] = base
    return out


async def idle_window(args: argparse.Namespace, workers: Workers, pid: int, seconds: float, n: int) -> dict[str, Any]:
    """``seconds`` idle; memory sampled on the way; what the clients saw over the window."""
    await workers.report()  # ping counters start now
    cpu0, t0 = cpu_seconds(pid), now()
    samples = []
    every = max(10.0, seconds / 20)
    while now() - t0 < seconds - 0.01:
        await asyncio.sleep(min(every, seconds - (now() - t0)))
        samples.append((round(now() - t0), memory(pid)["rss"]))
    span = now() - t0
    cpu = cpu_seconds(pid) - cpu0
    seen = await workers.report()
    expected = int(span / args.heartbeat_s) - 1  # pings every heartbeat_s, whatever the phase
    return {
        "idle_s": round(span, 1),
        "memory": memory(pid),
        "rss_samples": samples,
        "open": seen["open"],
        "closed": sum(seen["closes"].values()),
        "closes": seen["closes"],
        "pings_min": seen["pings_min"],
        "pings_expected_min": expected,
        "heartbeats_ok": seen["open"] == n and (seen["pings_min"] or 0) >= expected,
        "frames": seen["frames"],
        "gateway_cpu_pct": round(100 * cpu / span, 1),
    }


def per_connection(base: dict[str, int], mem: dict[str, int], n: int) -> dict[str, Any]:
    return {f"{k}_kib_per_conn": round((mem[k] - base[k]) / n, 2) for k in ("rss", "uss", "pss")}


async def probe_dump(pid: int, d: Path, k: int) -> int:
    os.kill(pid, signal.SIGUSR1)
    for _ in range(1200):  # a snapshot of a large heap takes a while (<= 120 s)
        if (d / f"{k}.done").exists():
            return k + 1
        await asyncio.sleep(0.1)
    raise RuntimeError("the memory probe did not answer")


# --- the whole run --------------------------------------------------------------------------
@contextlib.contextmanager
def stack(args: argparse.Namespace) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="chat-idle-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        cluster = None
        try:
            env = {**ENV, "GATEWAY_HEARTBEAT_S": str(args.heartbeat_s), **dict(e.split("=", 1) for e in args.env)}
            cluster = Cluster(
                nats.url,
                nats=nats,
                data_dir=tmp,
                log_dir=tmp / "logs",
                gateways=2,
                log_level="WARNING",
                env=env,
                media=False,
                search=False,
            ).start()
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            nats.stop()


async def run(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    with stack(args) as cluster:
        t = now()
        users = await setup_users(cluster.gateway_urls[1], args.steps[-1], args.group_size)
        print(f"set-up: {args.steps[-1]} users in {now() - t:.0f} s", file=sys.stderr, flush=True)
        for rep in range(args.repeat):
            for r in await one_run(args, cluster, users, None):
                r["repeat"] = rep
                rows.append(r)
        if args.profile:
            d = Path(args.profile)
            prof = await one_run(args, cluster, users, d)
            print_profile(d, [r["connections"] for r in prof if not r.get("hold")])
    if rows:
        table = summarize(rows)
        print(f"\nMedians of {args.repeat} run(s) (KiB of gateway memory per idle connection):")
        print_table(table)
        print("SUMMARY " + json.dumps(table), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", default="10000", help="steps, ascending, e.g. 1000,10000")
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    ap.add_argument("--settle-s", type=float, default=20.0, help="idle seconds before each measurement")
    ap.add_argument("--hold-s", type=float, default=0.0, help="idle seconds more after the last step (<= 600)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--group-size", type=int, default=8, help="users per group conversation (1: none)")
    ap.add_argument("--heartbeat-s", type=float, default=5.0, help="GATEWAY_HEARTBEAT_S (production: 5)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="more service env")
    ap.add_argument("--profile", default="", metavar="DIR", help="one more run with tracemalloc (not in results)")
    ap.add_argument("--max-minutes", type=float, default=90.0, help="watchdog for the whole run")
    args = ap.parse_args()
    args.steps = sorted(int(x) for x in args.connections.split(","))
    args.hold_s = max(0.0, min(args.hold_s, 600.0))
    args.settle_s = max(3 * args.heartbeat_s, min(args.settle_s, 300.0))
    args.repeat = max(0, min(args.repeat, 10))
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        for f in Path(args.profile).glob("*.*"):
            f.unlink()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the gateway inherits it
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.steps[-1] + 1000:
        sys.exit(f"ulimit -n (hard) {hard} is too low for {args.steps[-1]} connections")
    if run_estimate_s(args) > ACCESS_TTL_S - 60:
        sys.exit("a run would outlive the access tokens (900 s): shorten --hold-s / --settle-s")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.alarm(int(args.max_minutes * 60))
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
