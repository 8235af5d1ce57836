"""Fanout benchmark: N receivers in ONE channel, one sender at a fixed rate, the gateway
against a bare `websockets` broadcast server measured in the same run.

In one run, --repeat times:
(a) the reference: `fanout_reference.py` (websockets + uvloop; every text frame from the
    sender is broadcast to every receiver) is started, N receivers connect to it, and the
    ladder of offered rates is stepped through;
(b) Centrifugo 6.9.1 (`centrifugo.py`: built from the Go module proxy into .cache/bench/
    the first time, run on loopback with a generated config), N receivers subscribe to one
    channel with its JSON client protocol and the sender publishes over its WebSocket (the
    `publish` command; its reply is the ack), the same ladder;
(c) the real stack (chat_devtools Cluster on loopback: NATS from the wheel, SQLite or
    --backend postgres, auth, messages, presence, max(--gateways) gateways; rate limits off
    as in run.py), N receivers (users who joined one public channel) connect to one gateway
    or spread over two (--gateways 1,2 runs both), and the same ladder is stepped through:
    the sender posts `send` frames; every receiver gets each message as an `event`.
Receivers are spread over --procs processes (`fanout_worker.py`, asyncio + websockets).
--servers picks the rows (default reference,centrifugo,gateway; centrifugo is left out, with
a note, when it is not built and `go` is missing).

Each step offers `rate` messages/s (open loop: latency from each message's *scheduled*
send time) for --warmup + --duration s and measures, over the steady --duration window:
deliveries/s received, send->receive latency p50/p99/max (messages sent after the warm-up),
lost deliveries (acked messages x receivers - frames received, after a drain), and the
server's CPU from /proc (the reference or Centrifugo process, all threads; the gateway
processes, summed) as % of one core and as microseconds per delivery. The ladder is given
in deliveries/s (--ladder); the rate is that / N. It goes up to --target and on while
p99 <= 50 ms and nothing is lost. Per server it reports the best deliveries/s at p99 <= 50
ms with nothing lost, and at --target the gateway's CPU per delivery over the reference's
(the pass/fail ratio, DECISIONS: <= 1.25 with p99 <= 50 ms and nothing lost) and over
Centrifugo's, and, with two gateway counts, the 2-gateway figure over the 1-gateway one.
Prints every step as a JSON line, then a table of medians over the repeats.

Bounded: steps are bounded in count and time, drains poll at most 20 s, workers and the
reference exit by themselves (deadline, stdin closed), Centrifugo gets SIGTERM when this
process ends, the whole run has a --max-minutes watchdog (the build, before it, has its own
30 min bound). Loopback only. One benchmark at a time on the 2-core box.

    .venv/bin/python bench/fanout.py --receivers 500 --procs 4 --gateways 1 --repeat 3
    .venv/bin/python bench/fanout.py --receivers 500 --servers reference,centrifugo --repeat 1
    .venv/bin/python bench/fanout.py --receivers 500 --gateways 1,2 --repeat 3
    .venv/bin/python bench/fanout.py --receivers 5000 --ladder 10000,25000,50000 --repeat 3
    .venv/bin/python bench/fanout.py --receivers 500 --repeat 1 --servers gateway --profile /tmp/gw.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
from chat_devtools.cluster import Cluster
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.testing import NO_AUTH_BUDGETS, NO_RATE_LIMITS
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import centrifugo  # noqa: E402
from aio_util import gather_limited  # noqa: E402
from fanout_worker import bucket_ms  # noqa: E402
from run import start_backend, summarize_profile  # noqa: E402

PASSWORD = "bench-password-1"
P99_BOUND_MS = 50.0
# Rate limits off as in run.py; cheap password hashing (as presence.py) so that
# 5,000 logins take seconds, not minutes — the benchmark measures the fanout.
ENV = {
    **NO_RATE_LIMITS,
    **NO_AUTH_BUDGETS,
    "GATEWAY_RATE_WRITE_BURST": "0",
    "AUTH_ENVIRONMENT": "test",
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
}
TOKEN_MAX_AGE_S = 600  # access tokens live 900 s; log in again before a phase past this


def now() -> float:
    return time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process here


async def sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - now()))


# --- receivers ------------------------------------------------------------------------------
class Workers:
    """--procs receiver processes (fanout_worker.py) holding the N connections."""

    def __init__(self, procs: list[asyncio.subprocess.Process], connected: int, failed: int) -> None:
        self.procs, self.connected, self.failed = procs, connected, failed

    @classmethod
    async def start(
        cls, targets: list[tuple[str, str | None]], n_procs: int, deadline_s: float, **mode: Any
    ) -> Workers:
        procs = []
        for p in range(n_procs):
            mine = targets[p::n_procs]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "fanout_worker.py"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,
            )
            assert proc.stdin is not None
            cfg = {"targets": mine, "deadline_s": deadline_s, **mode}  # mode: centrifugo_channel=...
            proc.stdin.write((json.dumps(cfg) + "\n").encode())
            await proc.stdin.drain()
            procs.append(proc)
        connected = failed = 0
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 600)
                if not line.startswith(b"READY "):
                    raise RuntimeError(f"receiver process failed: {line!r}")
                ready = json.loads(line[6:])
                connected += ready["connected"]
                failed += ready["failed"]
        except BaseException:
            await cls(procs, 0, 0).stop()
            raise
        return cls(procs, connected, failed)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def report(self) -> list[dict[str, Any]]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(b"report\n")
        out = []
        for p in self.procs:
            assert p.stdout is not None
            out.append(json.loads(await asyncio.wait_for(p.stdout.readline(), 60)))
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


# --- senders --------------------------------------------------------------------------------
class Sender:
    """One sender connection: `frame(step, due, n)` is what it sends for message n."""

    def __init__(self, ws: ClientConnection, frame: Callable[[int, float, int], str], acks: bool) -> None:
        self.ws, self.frame = ws, frame
        # acks per step (the gateway); None: nothing is acked (the reference)
        self.acked: dict[int, int] | None = {} if acks else None
        self.errors: dict[str, int] = {}
        self.reader: asyncio.Task[None] | None = None

    def count_answers(self) -> None:
        async def read() -> None:
            with contextlib.suppress(Exception):
                async for raw in self.ws:
                    f = json.loads(raw)
                    if f.get("type") == "ack" and self.acked is not None:
                        step = int(f["client_msg_id"].split("-", 1)[0][1:])
                        self.acked[step] = self.acked.get(step, 0) + 1
                    elif f.get("type") == "error":
                        self.errors[f.get("code", "?")] = self.errors.get(f.get("code", "?"), 0) + 1

        self.reader = asyncio.create_task(read())

    async def run(self, step: int, rate: float, t0: float, t1: float) -> int:
        """Send at ``rate`` from t0 to t1 (open loop), each message marked with ``step``
        (the caller uses 2k for a step's warm-up and 2k + 1 for its measured window)."""
        interval, n = 1.0 / rate, 0
        while n < 10_000_000:
            due = t0 + n * interval
            if due >= t1:
                break
            await sleep_until(due)
            await self.ws.send(self.frame(step, due, n))
            n += 1
        return n

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()


def body(step: int, due: float, n: int) -> str:
    return f"fo|{step}|{due:.6f}|{n}| a benchmark message of ordinary length"


def gateway_frame(conv: str) -> Callable[[int, float, int], str]:
    tag = uuid.uuid4().hex[:8]  # client_msg_ids are idempotency keys: unique per phase

    def frame(step: int, due: float, n: int) -> str:
        cmid = f"s{step // 2}-{tag}{step}-{n}"
        return json.dumps({"type": "send", "conv": conv, "client_msg_id": cmid, "body": body(step, due, n)})

    return frame


def reference_frame(conv: str, sender: str) -> Callable[[int, float, int], str]:
    """A frame shaped like the gateway's event frame (same fields and about the same size)."""

    def frame(step: int, due: float, n: int) -> str:
        ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ev = {
            "conv": conv,
            "seq": 100000 + n,
            "kind": "message",
            "sender": sender,
            "ts": ts,
            "client_msg_id": f"s{step // 2}-{step}-{n}",
            "body": body(step, due, n),
        }
        return json.dumps({"type": "event", "event": ev}, separators=(",", ":"))

    return frame


# --- one step -------------------------------------------------------------------------------
@dataclass
class Acc:
    """What the receivers reported for one step (warm-up = step id 2k, steady = 2k+1)."""

    frames: int = 0
    bytes: int = 0
    hist: dict[int, int] = field(default_factory=dict)
    bins: dict[int, int] = field(default_factory=dict)
    closes: dict[str, int] = field(default_factory=dict)

    def add(self, reports: list[dict[str, Any]], step: int) -> int:
        new = 0
        for r in reports:
            for sid, (n, nbytes, hist) in r["steps"].items():
                if int(sid) // 2 != step:
                    continue  # a late frame of an earlier step
                new += n
                self.frames += n
                self.bytes += nbytes
                if int(sid) % 2 == 1:
                    for k, v in hist.items():
                        self.hist[int(k)] = self.hist.get(int(k), 0) + v
            for k, v in r["bins"].items():
                self.bins[int(k)] = self.bins.get(int(k), 0) + v
            for k, v in r["closes"].items():
                self.closes[k] = self.closes.get(k, 0) + v
        return new

    def pct(self, p: float) -> float:
        total = sum(self.hist.values())
        if not total:
            return float("nan")
        seen, want = 0, p * total
        for k in sorted(self.hist):
            seen += self.hist[k]
            if seen >= want:
                return bucket_ms(k)
        return bucket_ms(max(self.hist))


async def run_step(
    k: int, rate: float, args: argparse.Namespace, sender: Sender, workers: Workers, groups: dict[str, list[int]]
) -> dict[str, Any]:
    await workers.report()  # reset: whatever came before belongs to earlier steps
    t0 = now() + 0.3
    w0 = t0 + args.warmup
    t1 = w0 + args.duration
    sent_warm = await sender.run(2 * k, rate, t0, w0)
    cpu0 = cpu_snapshot_groups(groups)
    sent = sent_warm + await sender.run(2 * k + 1, rate, w0, t1)
    cpu1 = cpu_snapshot_groups(groups)
    acc = Acc()
    for _ in range(20):  # drain: until a second passes without a frame of this step
        await asyncio.sleep(1.0)
        if acc.add(await workers.report(), k) == 0:
            break
    acked = sent if sender.acked is None else sender.acked.get(k, 0)
    expected = acked * workers.connected
    window = (int(w0 * 10), int(t1 * 10))
    in_window = sum(v for b, v in acc.bins.items() if window[0] <= b < window[1])
    span = (window[1] - window[0]) / 10
    cpu = {g: cpu1[g] - cpu0[g] for g in groups}
    return {
        "rate": rate,
        "offered_deliveries_per_s": round(rate * workers.connected),
        "sent": sent,
        "acked": acked,  # the gateway's acks (the reference: = sent)
        "delivered_per_s": round(in_window / span),
        "p50_ms": acc.pct(0.5),
        "p99_ms": acc.pct(0.99),
        "max_ms": acc.pct(1.0),
        "lost": expected - acc.frames,
        "closes": acc.closes,
        "frame_bytes": round(acc.bytes / acc.frames) if acc.frames else 0,
        "server_cpu_pct": round(100 * cpu["server"] / args.duration, 1),
        "us_per_delivery": round(1e6 * cpu["server"] / in_window, 2) if in_window else None,
        "cpu_pct": {g: round(100 * v / args.duration) for g, v in cpu.items()},
    }


_TICK = float(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process from /proc/<pid>/stat (a few microseconds: read at
    the window's edges without delaying the sender)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_snapshot_groups(groups: dict[str, list[int]]) -> dict[str, float]:
    return {g: sum(cpu_seconds(pid) for pid in pids) for g, pids in groups.items()}


async def ladder(
    label: str,
    args: argparse.Namespace,
    sender: Sender,
    workers: Workers,
    groups: dict[str, list[int]],
    out: list[dict[str, Any]],
) -> None:
    n = workers.connected
    idle = await idle_cpu(args, groups)
    print(json.dumps({"server": label, "receivers": n, "idle_cpu_pct": idle}), flush=True)
    for k, d in enumerate(args.ladder):
        row = {"server": label, "receivers": n, **await run_step(k, d / n, args, sender, workers, groups)}
        row["server_idle_cpu_pct"] = idle["server"]
        # The same CPU less what the server spends with the receivers connected and nothing
        # sent (heartbeats, timers, metrics): a fixed cost per process, not per delivery.
        busy = row["server_cpu_pct"] - idle["server"]
        per_s = row["delivered_per_s"]
        row["us_per_delivery_above_idle"] = round(1e4 * busy / per_s, 2) if per_s else None
        out.append(row)
        print(json.dumps(row), flush=True)
        ok = row["p99_ms"] <= P99_BOUND_MS and row["lost"] == 0
        if d >= args.target and not ok:
            break


async def idle_cpu(args: argparse.Namespace, groups: dict[str, list[int]]) -> dict[str, float]:
    """Each group's CPU (% of one core) over --idle-s with the receivers connected, nothing sent."""
    if args.idle_s <= 0:
        return dict.fromkeys(groups, 0.0)
    await asyncio.sleep(1.0)  # connections settle (presence, subscriptions)
    cpu0 = cpu_snapshot_groups(groups)
    t0 = now()
    await asyncio.sleep(args.idle_s)
    cpu1 = cpu_snapshot_groups(groups)
    span = now() - t0
    return {g: round(100 * (cpu1[g] - cpu0[g]) / span, 1) for g in groups}


# --- the two servers ------------------------------------------------------------------------
async def reference_phase(args: argparse.Namespace, conv: str, owner: str, out: list[dict[str, Any]]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "fanout_reference.py"),
        "--port",
        "0",
        "--ping-interval",
        str(args.heartbeat_s),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        port = int(line.split()[1])
        base = f"ws://127.0.0.1:{port}"
        workers = await Workers.start([(base + "/recv", None)] * args.receivers, args.procs, args.deadline_s)
        try:
            sender = Sender(await connect(base + "/send", compression=None), reference_frame(conv, owner), acks=False)
            groups = {"server": [proc.pid], "receivers": workers.pids}
            await ladder("reference", args, sender, workers, groups, out)
            await sender.close()
        finally:
            await workers.stop()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()


async def centrifugo_phase(
    args: argparse.Namespace, binary: Path, conv: str, owner: str, out: list[dict[str, Any]]
) -> None:
    """Centrifugo: N clients subscribed to one channel, the sender publishing over its
    WebSocket (`publish`, acked by its reply) the reference's event-shaped frame as data."""
    with tempfile.TemporaryDirectory(prefix="chat-fanout-centrifugo-") as d:
        async with centrifugo.server(binary, Path(d), args.heartbeat_s) as srv:
            targets: list[tuple[str, str | None]] = [
                (srv.ws_url, srv.token(f"r{i}", TOKEN_MAX_AGE_S * 6)) for i in range(args.receivers)
            ]
            workers = await Workers.start(targets, args.procs, args.deadline_s, centrifugo_channel=centrifugo.CHANNEL)
            try:
                ws = await connect(srv.ws_url, compression=None)
                await centrifugo.connect_client(ws, srv.token(owner, TOKEN_MAX_AGE_S * 6))
                sender = Sender(ws, centrifugo.publish_frame(reference_frame(conv, owner)), acks=True)
                assert sender.acked is not None
                sender.reader = asyncio.create_task(centrifugo.read_answers(ws, sender.acked, sender.errors))
                groups = {"server": [srv.pid], "receivers": workers.pids}
                await ladder("centrifugo", args, sender, workers, groups, out)
                if sender.errors:
                    print(f"centrifugo publish errors: {sender.errors}", file=sys.stderr)
                await sender.close()
            finally:
                await workers.stop()


@dataclass
class Users:
    conv: str
    owner: dict[str, Any]
    receivers: list[dict[str, Any]]
    logged_in_at: float = 0.0


async def login(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return {"name": name, **r.json()}


async def setup_users(base: str, n: int) -> Users:
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:

        async def user(name: str) -> dict[str, Any]:
            r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            return await login(http, name)

        owner = await user(f"fo{tag}owner")
        h = {"Authorization": f"Bearer {owner['access_token']}"}
        r = await http.post("/v1/conversations", headers=h, json={"kind": "channel", "name": f"fanout-{tag}"})
        r.raise_for_status()
        conv = r.json()["id"]

        async def member(i: int) -> dict[str, Any]:
            u = await user(f"fo{tag}r{i}")
            r = await http.post(
                f"/v1/conversations/{conv}/join", headers={"Authorization": f"Bearer {u['access_token']}"}
            )
            r.raise_for_status()
            return u

        receivers = await gather_limited(16, [member(i) for i in range(n)])
    return Users(conv, owner, receivers, now())


async def fresh_tokens(base: str, users: Users) -> None:
    if now() - users.logged_in_at < TOKEN_MAX_AGE_S:
        return
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        users.owner = await login(http, users.owner["name"])
        users.receivers = await gather_limited(16, [login(http, u["name"]) for u in users.receivers])
    users.logged_in_at = now()


async def gateway_phase(
    args: argparse.Namespace, cluster: Cluster, users: Users, gateways: int, out: list[dict[str, Any]], profile: bool
) -> None:
    await fresh_tokens(cluster.gateway_url, users)
    urls = cluster.ws_urls[:gateways]
    targets = [(urls[i % gateways], u["access_token"]) for i, u in enumerate(users.receivers)]
    workers = await Workers.start(targets, args.procs, args.deadline_s)
    try:
        ws = await connect(urls[0], compression=None)
        await ws.send(json.dumps({"type": "auth", "token": users.owner["access_token"]}))
        if json.loads(await ws.recv()).get("type") != "auth_ok":
            raise RuntimeError("sender not authenticated")
        sender = Sender(ws, gateway_frame(users.conv), acks=True)
        sender.count_answers()
        gw_pids = [g.pid or 0 for g in cluster.gateways[:gateways]]
        groups = {
            "server": gw_pids,
            "receivers": workers.pids,
            "messages": [cluster.messages[0].pid or 0],
            "nats": [cluster.nats.pid if cluster.nats is not None else 0],
        }
        label = f"gateway x{gateways}"
        await ladder(label, args, sender, workers, groups, out)
        if profile:
            await profile_step(args, sender, workers, groups, gw_pids[0])
        if sender.errors:
            print(f"send errors: {sender.errors}", file=sys.stderr)
        await sender.close()
    finally:
        await workers.stop()


async def profile_step(
    args: argparse.Namespace, sender: Sender, workers: Workers, groups: dict[str, list[int]], pid: int
) -> None:
    """One extra step at --target while py-spy records gateway 0 (not in the results)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [spy, "record", "-p", str(pid), "-d", str(int(args.warmup + args.duration)), "-r", "200"]
    # --native (C frames too) needs py-spy to pause the process at every sample: here that
    # stalled the gateway (~1,000 deliveries/s) and the samples were mostly the pause itself.
    cmd += ["-f", "raw", "-o", args.profile] + (["--native"] if args.profile_native else ["--nonblocking"])
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    row = await run_step(len(args.ladder) + 1, args.target / workers.connected, args, sender, workers, groups)
    print("PROFILED " + json.dumps(row), flush=True)
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode:
            print(f"py-spy failed ({proc.returncode}): {err.decode()[-500:]}", file=sys.stderr)
    except TimeoutError:
        proc.kill()
    if os.path.exists(args.profile):  # noqa: ASYNC240 (a stat, once)
        own, incl = summarize_profile(Path(args.profile), top=30)
        print("profile of gateway-0, self time (% of samples):")
        for fn, share in own:
            print(f"  {share:5.1f}  {fn}")
        print("profile of gateway-0, inclusive time of project functions:")
        for fn, share in incl:
            print(f"  {share:5.1f}  {fn}")


@contextlib.contextmanager
def stack(args: argparse.Namespace, gateways: int) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="chat-fanout-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        pg = cluster = None
        try:
            urls, pg = start_backend(args.backend, tmp)
            env = {**ENV, **dict(e.split("=", 1) for e in args.env)}
            cluster = Cluster(
                nats.url,
                nats=nats,
                database_urls=urls,
                data_dir=tmp,
                log_dir=tmp / "logs",
                gateways=gateways,
                log_level="WARNING",
                env=env,
                media=False,
                search=False,
            ).start()
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            if pg is not None:
                pg.stop()
                pg.destroy()
            nats.stop()


# --- report ---------------------------------------------------------------------------------
def medians(rows: list[dict[str, Any]], args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    table: list[dict[str, Any]] = []
    keys: list[tuple[str, float]] = []
    for r in rows:
        if (r["server"], r["rate"]) not in keys:
            keys.append((r["server"], r["rate"]))
    for server, rate in keys:
        rs = [r for r in rows if r["server"] == server and r["rate"] == rate]

        def med(f: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(r[f] for r in rs)

        us = [r["us_per_delivery"] for r in rs if r["us_per_delivery"] is not None]
        above = [r["us_per_delivery_above_idle"] for r in rs if r["us_per_delivery_above_idle"] is not None]
        table.append(
            {
                "server": server,
                "receivers": rs[0]["receivers"],
                "rate": round(rate, 2),
                "offered": rs[0]["offered_deliveries_per_s"],
                "delivered_per_s": med("delivered_per_s"),
                "p50_ms": med("p50_ms"),
                "p99_ms": med("p99_ms"),
                "p99_runs": [r["p99_ms"] for r in rs],
                "lost": sum(r["lost"] for r in rs),
                "unacked": sum(r["sent"] - r["acked"] for r in rs),
                "server_cpu_pct": med("server_cpu_pct"),
                "us_per_delivery": statistics.median(us) if us else None,
                "us_runs": us,
                "idle_cpu_pct": med("server_idle_cpu_pct"),
                "us_above_idle": statistics.median(above) if above else None,
                "us_above_idle_runs": above,
                "runs": len(rs),
            }
        )
    summary: dict[str, Any] = {"capacity_at_p99_50ms": {}, "us_per_delivery_at_target": {}}
    for server in dict.fromkeys(r["server"] for r in rows):
        per_run: list[float] = []
        for rep in sorted({r["repeat"] for r in rows}):
            ok = [
                r["delivered_per_s"]
                for r in rows
                if r["server"] == server and r["repeat"] == rep and r["p99_ms"] <= P99_BOUND_MS and r["lost"] == 0
            ]
            per_run.append(max(ok, default=0))
        summary["capacity_at_p99_50ms"][server] = {"median": statistics.median(per_run), "runs": per_run}
        at = [t for t in table if t["server"] == server and t["offered"] == round(args.target)]
        if at:
            summary["us_per_delivery_at_target"][server] = at[0]["us_per_delivery"]
    us = summary["us_per_delivery_at_target"]
    ref = us.get("reference")
    for server, v in us.items():
        if server != "reference" and ref and v:
            summary[f"ratio {server} / reference"] = round(v / ref, 2)
    cf = us.get("centrifugo")
    for server, v in us.items():
        if server.startswith("gateway") and cf and v:
            summary[f"ratio {server} / centrifugo"] = round(v / cf, 2)
    if us.get("gateway x1") and us.get("gateway x2"):
        summary["ratio gateway x2 / gateway x1"] = round(us["gateway x2"] / us["gateway x1"], 2)
        above = {
            t["server"]: t["us_above_idle"]
            for t in table
            if t["offered"] == round(args.target) and t["server"] in ("gateway x1", "gateway x2")
        }
        if above.get("gateway x1") and above.get("gateway x2"):
            summary["ratio gateway x2 / gateway x1, above idle"] = round(above["gateway x2"] / above["gateway x1"], 2)
    return table, summary


def print_table(table: list[dict[str, Any]]) -> None:
    cols = ["server", "N", "msg/s", "offered/s", "delivered/s", "p50 ms", "p99 ms", "lost", "unacked", "CPU %"]
    cols += ["us/deliv", "idle CPU %", "us/deliv above idle"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for t in table:
        us = "-" if t["us_per_delivery"] is None else f"{t['us_per_delivery']:.2f}"
        cells = [
            t["server"],
            f"{t['receivers']:,}",
            f"{t['rate']:g}",
            f"{t['offered']:,}",
            f"{t['delivered_per_s']:,.0f}",
            f"{t['p50_ms']:.1f}",
            f"{t['p99_ms']:.1f}",
            str(t["lost"]),
            str(t["unacked"]),
            f"{t['server_cpu_pct']:.0f}",
            us,
            f"{t['idle_cpu_pct']:.1f}",
            "-" if t["us_above_idle"] is None else f"{t['us_above_idle']:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")


async def run(args: argparse.Namespace, binary: Path | None) -> None:
    gw_counts = [int(g) for g in args.gateways.split(",")]
    rows: list[dict[str, Any]] = []
    with stack(args, max(gw_counts)) as cluster:
        t = now()
        users = await setup_users(cluster.gateway_url, args.receivers)
        print(f"set-up: {args.receivers} receivers in one channel in {now() - t:.0f} s", file=sys.stderr, flush=True)
        for rep in range(args.repeat):
            out: list[dict[str, Any]] = []
            if "reference" in args.servers:
                await reference_phase(args, users.conv, users.owner["user"]["id"], out)
            if binary is not None:
                await centrifugo_phase(args, binary, users.conv, users.owner["user"]["id"], out)
            if "gateway" in args.servers:
                for g in gw_counts:
                    await gateway_phase(
                        args, cluster, users, g, out, bool(args.profile) and rep == 0 and g == gw_counts[0]
                    )
            for r in out:
                r["repeat"] = rep
            rows += out
            dead = cluster.dead()
            if dead:
                raise RuntimeError(f"service(s) died: {dead}")
    table, summary = medians(rows, args)
    print(f"\nMedians of {args.repeat} run(s), {args.backend}, target {args.target:,} deliveries/s:")
    print_table(table)
    print("SUMMARY " + json.dumps(summary), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--receivers", type=int, default=500)
    ap.add_argument("--procs", type=int, default=4, help="receiver processes")
    ap.add_argument("--gateways", default="1", help="gateway counts to run, e.g. 1 or 2 or 1,2")
    ap.add_argument(
        "--servers", default="", help="of reference,centrifugo,gateway (default: all three; centrifugo if buildable)"
    )
    ap.add_argument(
        "--ladder", default="10000,25000,50000,75000,100000", help="offered deliveries/s per step, ascending"
    )
    ap.add_argument("--target", type=int, default=50000, help="deliveries/s of the pass/fail ratio (in the ladder)")
    ap.add_argument("--duration", type=float, default=10.0, help="steady seconds per step (max 120)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--idle-s", type=float, default=5.0, help="idle CPU measured before each ladder (0: off)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--heartbeat-s", type=float, default=5.0, help="the reference pings as the gateway does")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--profile", default="", help="py-spy raw output path: one extra profiled step (gateway 0)")
    ap.add_argument("--profile-native", action="store_true", help="py-spy --native (stalls the gateway; avoid)")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="watchdog for the whole run")
    args = ap.parse_args()
    args.ladder = sorted(int(x) for x in args.ladder.split(","))
    args.duration = min(args.duration, 120.0)
    args.repeat = max(1, min(args.repeat, 10))
    if args.target not in args.ladder:
        ap.error("--target must be one of the --ladder values")
    if not args.servers:
        args.servers = "reference,centrifugo,gateway"
        if not centrifugo.can_build():
            args.servers = "reference,gateway"
            print("centrifugo left out: not built and `go` is not on PATH", file=sys.stderr)
    servers = args.servers.split(",")
    if unknown := set(servers) - {"reference", "centrifugo", "gateway"}:
        ap.error(f"unknown --servers: {', '.join(sorted(unknown))}")
    binary = centrifugo.ensure_binary() if "centrifugo" in servers else None  # before the watchdog
    args.deadline_s = args.max_minutes * 60
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # N sockets here and in the servers
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 2 * args.receivers + 1000:
        sys.exit(f"ulimit -n {hard} is too low for {args.receivers} receivers")
    # Stop cleanly (workers, reference, cluster) on Ctrl-C, SIGTERM or the watchdog, also when
    # started in the background (where SIGINT arrives ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.alarm(int(args.max_minutes * 60))
    uvloop.run(run(args, binary))


if __name__ == "__main__":
    main()
