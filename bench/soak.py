"""Soak with churn, and a checker: C clients over the gateways in K conversations send at a
fixed total rate for --duration seconds while --churn of them per second drop their
connection and come back (alternating gateways) with `sync` from the last seq they hold.

The checker then asks what PROTOCOL promises:
- per connection: each conversation's events arrive in increasing seq order, at most once
  (`dup_in_conn`, `reordered_in_conn`); a sync replay of events older than the first one
  the connection received live is counted apart (`history_after_live`, allowed: a
  connection is live from the conversation's last seq at authentication);
- per client, over all its connections plus a final `sync`: every event of its
  conversations received (`lost`);
- the store: every acked message is in history exactly once, at the seq its ack carried
  (`acked_missing`, `stored_twice`, `ack_seq_mismatch`), and history is gap-free (`gaps`).
All must be 0. (`unacked`: sends whose ack was lost with a dropped connection; this client
does not resend them.) Also reported: send->receive latency p50/p99/p999 (live deliveries only),
acked messages/s, reconnects. Gateway memory per connection is measured by run.py.

Bounded: --duration ≤ 3600 s plus a drain; every wait has a timeout. Loopback only.

    python bench/soak.py --gateway http://127.0.0.1:8080 --gateway http://127.0.0.1:8090 \
        --clients 50 --convs 5 --rate 200 --churn 0.02 --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import websockets

PASSWORD = "bench-password-1"


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        sys.exit(f"refusing non-loopback target {url}")


@dataclass
class Totals:
    sent: int = 0
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # cmid -> (conv, seq)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latency: list[float] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    reconnects: int = 0
    server_closes: collections.Counter[str] = field(default_factory=collections.Counter)
    dup_in_conn: int = 0
    reordered_in_conn: int = 0
    history_after_live: int = 0


class Client:
    def __init__(self, i: int, user: dict[str, Any], convs: list[str], urls: list[str], t: Totals) -> None:
        self.i, self.user, self.convs, self.urls, self.t = i, user, convs, urls, t
        self.seen: dict[str, set[int]] = {c: set() for c in convs}
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.n = 0
        self.gw = i % len(urls)
        self.synced = asyncio.Event()
        self.truncated: list[str] = []
        self.broken = False  # closed by the server: reconnect and sync at the next tick

    def held(self) -> dict[str, int]:
        """The last seq held per conversation: the highest one below which nothing is missing."""
        out = {}
        for c, seqs in self.seen.items():
            last = 0
            while last + 1 in seqs:
                last += 1
            out[c] = last
        return out

    async def connect(self, sync: bool) -> None:
        url = self.urls[self.gw]
        self.ws = await websockets.connect(url, max_size=None, compression=None, open_timeout=10)
        await self.ws.send(json.dumps({"type": "auth", "token": self.user["access_token"]}))
        first = orjson.loads(await asyncio.wait_for(self.ws.recv(), 10))
        assert first["type"] == "auth_ok", first
        self.synced.clear()
        self.reader = asyncio.create_task(self._read(self.ws))
        self.broken = False
        if sync:
            await self.ws.send(orjson.dumps({"type": "sync", "ref": "s", "positions": self.held()}).decode())
            await asyncio.wait_for(self.synced.wait(), 30)
            for conv in self.truncated:  # more than 500 missed: the rest over REST
                await self.catch_up(conv)

    async def catch_up(self, conv: str) -> None:
        base = self.urls[self.gw].replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for e in await history(http, self.user["access_token"], conv, after=self.held()[conv]):
                self.seen[conv].add(e["seq"])

    async def _read(self, ws: Any) -> None:
        last: dict[str, int] = {}
        first: dict[str, int] = {}
        got: dict[str, set[int]] = collections.defaultdict(set)
        try:
            async for raw in ws:
                now = time.perf_counter()
                f = orjson.loads(raw)
                t = f.get("type")
                if t == "event":
                    ev = f["event"]
                    c, s = ev["conv"], ev["seq"]
                    if c not in self.seen:
                        continue
                    if s in got[c]:
                        self.t.dup_in_conn += 1
                    elif s < first.get(c, s):
                        # the sync replay of history from before this connection went live
                        # (docs/protocol.md: live from last_seq at authentication)
                        self.t.history_after_live += 1
                    elif s < last.get(c, 0):
                        self.t.reordered_in_conn += 1
                    first.setdefault(c, s)
                    got[c].add(s)
                    last[c] = max(last.get(c, 0), s)
                    self.seen[c].add(s)
                    cmid = ev.get("client_msg_id")
                    if cmid is not None and cmid in self.t.sent_at and f.get("ref") is None:
                        self.t.latency.append(now - self.t.sent_at.pop(cmid))
                elif t == "ack":
                    self.t.acked[f["client_msg_id"]] = (f["conv"], f["seq"])
                elif t == "error":
                    self.t.errors[f.get("code", "?")] += 1
                elif t == "sync_done":
                    self.truncated = list(f.get("truncated") or [])
                    self.synced.set()
        except websockets.ConnectionClosed:
            pass
        if ws.close_code not in (None, 1000) and ws is self.ws:
            self.t.server_closes[str(ws.close_code)] += 1
            self.broken = True

    async def drop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.wait([self.reader], timeout=5)

    async def send(self) -> None:
        conv = self.convs[self.n % len(self.convs)]
        cmid = f"s{self.i}-{self.n}"
        self.n += 1
        self.t.sent_at[cmid] = time.perf_counter()
        self.t.sent += 1
        try:
            await self.ws.send(
                orjson.dumps({"type": "send", "conv": conv, "client_msg_id": cmid, "body": f"soak {cmid}"}).decode()
            )
        except websockets.ConnectionClosed:
            self.t.errors["send_on_closed"] += 1


async def setup(gateway: str, clients: int, convs: int) -> tuple[list[dict[str, Any]], list[str]]:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        tag = uuid.uuid4().hex[:6]
        users = []
        for i in range(clients):
            name = f"soak{tag}{i}"
            (await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})).raise_for_status()
            r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
            r.raise_for_status()
            users.append(r.json())
        h = {"Authorization": f"Bearer {users[0]['access_token']}"}
        conv_ids = []
        for k in range(convs):
            r = await http.post("/v1/conversations", headers=h, json={"kind": "channel", "name": f"soak-{tag}-{k}"})
            r.raise_for_status()
            conv_ids.append(r.json()["id"])
            for u in users[1:]:
                hu = {"Authorization": f"Bearer {u['access_token']}"}
                (await http.post(f"/v1/conversations/{conv_ids[-1]}/join", headers=hu)).raise_for_status()
    return users, conv_ids


async def history(http: httpx.AsyncClient, token: str, conv: str, after: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        r = await http.get(
            f"/v1/conversations/{conv}/messages",
            params={"after": after, "limit": 200},
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        body = r.json()
        out += body["events"]
        if not body["has_more"] or not body["events"]:
            return out
        after = body["events"][-1]["seq"]


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 2)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    users, convs = await setup(args.gateway[0], args.clients, args.convs)
    urls = [g.replace("http://", "ws://").rstrip("/") + "/ws" for g in args.gateway]
    t = Totals()
    clients = [Client(i, u, convs, urls, t) for i, u in enumerate(users)]
    for c in clients:
        await c.connect(sync=False)
    print("CONNECTED", flush=True)  # run.py measures the gateways' memory now
    await asyncio.sleep(2.0)
    rng = random.Random(args.seed)
    interval = 1.0 / args.rate
    started = time.perf_counter()
    next_send = started
    next_churn = started + 1.0
    k = 0
    while time.perf_counter() - started < args.duration:
        now = time.perf_counter()
        if now >= next_churn:
            next_churn += 1.0
            victims = rng.sample(clients, max(1, round(args.churn * len(clients))))
            victims += [c for c in clients if c.broken and c not in victims]
            for c in victims:
                await c.drop()
                c.gw = (c.gw + 1) % len(urls)
                t.reconnects += 1
            await asyncio.gather(*(c.connect(sync=True) for c in victims))
        while next_send <= time.perf_counter():
            await clients[k % len(clients)].send()
            k += 1
            next_send += interval
        await asyncio.sleep(max(0.0, min(next_send, next_churn) - time.perf_counter()))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(args.drain)
    # Final catch-up of every client, then close.
    for c in clients:
        await c.drop()
        await c.connect(sync=True)
    await asyncio.sleep(1.0)
    for c in clients:
        await c.drop()
    # The checker.
    async with httpx.AsyncClient(base_url=args.gateway[0], timeout=60) as http:
        logs = {cv: await history(http, users[0]["access_token"], cv) for cv in convs}
    gaps = sum(1 for cv in convs for a, b in zip(logs[cv], logs[cv][1:], strict=False) if b["seq"] != a["seq"] + 1)
    stored: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for cv in convs:
        for e in logs[cv]:
            if e["kind"] == "message":
                stored[e["client_msg_id"]].append((cv, e["seq"]))
    stored_twice = sum(1 for v in stored.values() if len(v) > 1)
    acked_missing = sum(1 for cmid in t.acked if cmid not in stored)
    mismatch = sum(1 for cmid, cs in t.acked.items() if cmid in stored and stored[cmid][0] != cs)
    last = {cv: logs[cv][-1]["seq"] if logs[cv] else 0 for cv in convs}
    lost = 0
    for c in clients:
        for cv in convs:
            # every event from the client's own member_joined on
            first = min(c.seen[cv]) if c.seen[cv] else last[cv] + 1
            lost += sum(1 for s in range(first, last[cv] + 1) if s not in c.seen[cv])
    return {
        "clients": args.clients,
        "convs": args.convs,
        "offered_rate": args.rate,
        "churn_per_s": args.churn,
        "duration_s": round(elapsed, 1),
        "sent": t.sent,
        "acked": len(t.acked),
        "acked_per_s": round(len(t.acked) / elapsed, 1),
        "errors": dict(t.errors),
        "reconnects": t.reconnects,
        "server_closes": dict(t.server_closes),
        "lost": lost,
        "dup_in_conn": t.dup_in_conn,
        "reordered_in_conn": t.reordered_in_conn,
        "history_after_live": t.history_after_live,
        "unacked": t.sent - len(t.acked),
        "gaps": gaps,
        "stored_twice": stored_twice,
        "acked_missing": acked_missing,
        "ack_seq_mismatch": mismatch,
        "recv_ms": {"p50": pct(t.latency, 0.5), "p99": pct(t.latency, 0.99), "p999": pct(t.latency, 0.999)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", action="append", required=True)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--convs", type=int, default=5)
    ap.add_argument("--rate", type=float, default=200, help="messages/s offered in total")
    ap.add_argument("--churn", type=float, default=0.02, help="share of clients reconnecting per second")
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--drain", type=float, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for g in args.gateway:
        _check_loopback(g)
    if not (0 < args.duration <= 3600 and 0 < args.clients <= 5000 and 0 < args.rate <= 20000):
        sys.exit("arguments out of range")
    try:
        import uvloop

        res = uvloop.run(asyncio.wait_for(run(args), args.duration + 600))
    except ImportError:
        res = asyncio.run(asyncio.wait_for(run(args), args.duration + 600))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
