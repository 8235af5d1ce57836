"""Presence benchmark: many connections over two gateways, churn, then a gateway SIGKILL.

Starts NATS, auth, messages, one presence replica and two gateways (SQLite, production
presence settings: 5 s heartbeats, 3 s grace), then, in this process:

1. Set-up: --users users (each logs in once), each in --layers groups of --group-size
   (one random partition of all users per layer): about 14 watchers per user by default.
   One connection per user, spread over both gateways.
2. Churn: every second --churn of the connections close; half of them come back within
   0.2-1.5 s (inside the grace: must cost nothing), half after 5-20 s (a real offline, then
   online). After 20 s of churn (the steady state: as many coming back as leaving), for
   --duration s: presence frames delivered per second (received by all clients), presence
   changes and frames published per second, and the CPU of every process (share of one
   core, from /proc as in run.py).
3. Gateway kill: once everyone is back, gateway-1 is SIGKILLed. --rejoin of its users
   reconnect to gateway-0 at once (they must get no offline frame); for the others, the
   delay from the kill to the first `offline` frame about them at a watcher on gateway-0
   (p50/p90/p99/max; the bound is 3 heartbeat intervals, 15 s).

Loopback only; bounded by its phases' timeouts. Prints one JSON line.

    .venv/bin/python bench/presence.py --users 5000 --churn 0.02 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.testing import NO_AUTH_BUDGETS

sys.path.insert(0, str(Path(__file__).parent))
from aio_util import gather_limited
from run import cpu_snapshot  # bench/run.py: CPU seconds per process tree

PASSWORD = "bench-password-1"
ENV = {
    "AUTH_ENVIRONMENT": "test",
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
    "GATEWAY_RATE_SEND_BURST": "0",
    "GATEWAY_RATE_FRAMES_BURST": "0",
    "GATEWAY_RATE_WRITE_BURST": "0",
    **NO_AUTH_BUDGETS,
}
INTERVAL_S = 5.0
CHURN_WARM_S = 20.0


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 2)


class Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.by_status = {"online": 0, "offline": 0}
        self.first_offline: dict[str, float] = {}  # user -> first offline frame (kill phase)
        self.watch_offline = False

    def on_presence(self, frame: dict[str, Any]) -> None:
        self.frames += 1
        self.by_status[frame["status"]] += 1
        if self.watch_offline and frame["status"] == "offline":
            self.first_offline.setdefault(frame["user_id"], time.monotonic())


class Client:
    """One user's connection; counts the presence frames it receives."""

    def __init__(self, user_id: str, token: str, stats: Stats) -> None:
        self.user_id, self.token, self.stats = user_id, token, stats
        self.ws: Any = None
        self.gw = -1
        self.task: asyncio.Task[None] | None = None

    async def open(self, urls: list[str], gw: int) -> None:
        self.ws = await websockets.connect(urls[gw], max_size=None, compression=None, ping_interval=None)
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        if json.loads(await self.ws.recv())["type"] != "auth_ok":
            raise RuntimeError("auth refused")
        self.gw = gw
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if '"type":"presence"' in raw:
                    self.stats.on_presence(orjson.loads(raw))
        except websockets.ConnectionClosed:
            pass

    async def close(self) -> None:
        self.gw = -1
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=5)


async def setup(gw_urls: list[str], n: int, group_size: int, layers: int) -> list[tuple[str, str]]:
    """n users, each in ``layers`` groups; returns (user_id, access_token) per user."""
    https = [httpx.AsyncClient(base_url=u, timeout=60) for u in gw_urls]
    tag = random.randrange(1 << 30)

    async def user(i: int) -> tuple[str, str]:
        http = https[i % len(https)]
        name = f"pb{tag}x{i}"
        r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
        r.raise_for_status()
        r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        r.raise_for_status()
        return r.json()["user"]["id"], r.json()["access_token"]

    users = await gather_limited(32, [user(i) for i in range(n)])

    async def conv(i: int, kind: str, members: list[str]) -> None:
        r = await https[i % len(https)].post(
            "/v1/conversations",
            json={"kind": kind, "members": members},
            headers={"Authorization": f"Bearer {users[i][1]}"},
        )
        r.raise_for_status()

    jobs = []
    for _ in range(layers):
        order = list(range(n))
        random.shuffle(order)
        for g in range(0, n - 1, group_size):
            block = order[g : g + group_size]
            jobs.append(conv(block[0], "group", [users[j][0] for j in block[1:]]))
    await gather_limited(32, jobs)
    for h in https:
        await h.aclose()
    return users


def cpu_groups(c: Cluster, nats: NatsServer) -> dict[str, int]:
    g = {"presence": c.presence[0].pid, "messages": c.messages[0].pid, "auth": c.auth.pid, "nats": nats.pid}
    g.update({f"gateway-{i}": gw.pid for i, gw in enumerate(c.gateways)})
    return {k: v for k, v in g.items() if v}


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def churn(clients: list[Client], urls: list[str], rate: float, duration: float) -> dict[str, int]:
    """Every 0.1 s, close rate/10 of the connected clients; each comes back quick or late.
    Stops closing after ``duration`` and returns once everyone is back."""
    counts = {"quick": 0, "away": 0, "failed_reconnects": 0}
    pending: set[asyncio.Task[None]] = set()

    async def bounce(c: Client, after: float) -> None:
        await c.close()
        await asyncio.sleep(after)
        try:
            await c.open(urls, random.randrange(len(urls)))
        except Exception:
            counts["failed_reconnects"] += 1

    end = time.monotonic() + duration
    carry = 0.0
    while time.monotonic() < end:
        carry += rate * len(clients) / 10
        live = [c for c in clients if c.gw >= 0]
        for c in random.sample(live, min(int(carry), len(live))):
            quick = random.random() < 0.5
            counts["quick" if quick else "away"] += 1
            t = asyncio.create_task(bounce(c, random.uniform(0.2, 1.5) if quick else random.uniform(5, 20)))
            pending.add(t)
            t.add_done_callback(pending.discard)
        carry -= int(carry)
        await asyncio.sleep(0.1)
    if pending:
        await asyncio.wait(pending, timeout=60)
    return counts


async def kill_phase(c: Cluster, clients: list[Client], urls: list[str], stats: Stats, rejoin: float) -> dict[str, Any]:
    await asyncio.sleep(INTERVAL_S + 4)  # settled: everyone back, grace over, a full report sent
    on_gw1 = [cl for cl in clients if cl.gw == 1]
    stats.first_offline.clear()
    stats.watch_offline = True
    killed = time.monotonic()
    c.gateways[1].kill()
    movers = random.sample(on_gw1, int(rejoin * len(on_gw1)))
    for cl in on_gw1:
        cl.gw = -1
    await gather_limited(200, [cl.open(urls, 0) for cl in movers])
    await asyncio.sleep(4 * INTERVAL_S)
    moved = {cl.user_id for cl in movers}
    gone = [cl.user_id for cl in on_gw1 if cl.user_id not in moved]
    delays = [stats.first_offline[u] - killed for u in gone if u in stats.first_offline]
    return {
        "users_on_killed_gateway": len(on_gw1),
        "reconnected_elsewhere": len(moved),
        "false_offline_of_reconnected": sum(1 for u in moved if u in stats.first_offline),
        "offline_observed": len(delays),
        "offline_expected": len(gone),
        "offline_delay_s": {
            "p50": pct(delays, 50),
            "p90": pct(delays, 90),
            "p99": pct(delays, 99),
            "max": round(max(delays), 2) if delays else None,
        },
        "bound_s": 3 * INTERVAL_S,
    }


async def bench(c: Cluster, nats: NatsServer, args: argparse.Namespace) -> dict[str, Any]:
    urls = [u.replace("http://", "ws://") + "/ws" for u in c.gateway_urls]
    t0 = time.monotonic()
    users = await setup(c.gateway_urls, args.users, args.group_size, args.layers)
    t_setup = time.monotonic() - t0
    stats = Stats()
    clients = [Client(u, tok, stats) for u, tok in users]
    await gather_limited(200, [cl.open(urls, i % 2) for i, cl in enumerate(clients)])
    t_connect = time.monotonic() - t0 - t_setup
    await asyncio.sleep(INTERVAL_S + 4)
    pres = c.presence[0].base_url
    before = {k: metric(pres, f"chat_presence_{k}") for k in ("changes_total", "frames_published_total")}
    churning = asyncio.create_task(churn(clients, urls, args.churn, CHURN_WARM_S + args.duration))
    await asyncio.sleep(CHURN_WARM_S)
    frames0, cpu0, self0, t1 = (
        stats.frames,
        cpu_snapshot(cpu_groups(c, nats)),
        resource.getrusage(resource.RUSAGE_SELF),
        time.monotonic(),
    )
    before = {k: metric(pres, f"chat_presence_{k}") for k in before}
    await asyncio.sleep(args.duration)
    span = time.monotonic() - t1
    frames1, cpu1, self1 = stats.frames, cpu_snapshot(cpu_groups(c, nats)), resource.getrusage(resource.RUSAGE_SELF)
    after = {k: metric(pres, f"chat_presence_{k}") for k in before}
    counts = await churning
    cpu = {k: round(100 * (cpu1[k] - cpu0[k]) / span, 1) for k in cpu0}
    cpu["bench_clients"] = round(100 * (self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime) / span, 1)
    churn_res = {
        "seconds": round(span, 1),
        "closed_quick": counts["quick"],
        "closed_away": counts["away"],
        "failed_reconnects": counts["failed_reconnects"],
        "presence_frames_delivered_per_s": round((frames1 - frames0) / span, 1),
        "presence_changes_per_s": round((after["changes_total"] - before["changes_total"]) / span, 1),
        "presence_frames_published_per_s": round(
            (after["frames_published_total"] - before["frames_published_total"]) / span, 1
        ),
        "cpu_pct_of_one_core": cpu,
    }
    kill = await kill_phase(c, clients, urls, stats, args.rejoin)
    for cl in clients:
        if cl.gw >= 0:
            await cl.close()
    return {
        "users": args.users,
        "setup_s": round(t_setup, 1),
        "connect_s": round(t_connect, 1),
        "churn": churn_res,
        "gateway_kill": kill,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2, help="groups per user")
    ap.add_argument("--churn", type=float, default=0.02, help="share of connections closed per second")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--rejoin", type=float, default=0.1, help="share of the killed gateway's users reconnecting")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.users + 1000)), hard))
    with tempfile.TemporaryDirectory(prefix="chat-bench-presence-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        cluster = Cluster(
            nats.url, nats=nats, data_dir=tmp, log_dir=tmp / "logs", gateways=2, log_level="WARNING", env=ENV
        )
        try:
            cluster.start()
            res = asyncio.run(asyncio.wait_for(bench(cluster, nats, args), args.duration + 1800))
            print(json.dumps(res), flush=True)
        finally:
            cluster.stop()
            nats.stop()


if __name__ == "__main__":
    main()
