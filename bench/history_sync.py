"""The sync workload of bench/history.py: a user who is a member of C conversations comes
back after being offline while each got E new events, and sends ONE ``sync`` frame for
all of them (PROTOCOL §4).

Set-up (through the API, once): a poster creates C groups with the syncing user, the
syncing user's positions are each conversation's ``last_seq`` at that moment (what it had
seen before going offline), then the poster sends E messages into each (REST, 16 at a
time). Each sample is a fresh WebSocket connection (connect, ``auth``, ``auth_ok``, not
timed), then ``sync`` with those positions: the time from writing the frame to reading
``sync_done``, and every event frame in between is checked (C x E of them, none
truncated or not found).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aio_util import gather_limited
from history_ws import WsClient

PASSWORD = "bench-password-1"


@dataclass
class SyncSetup:
    user: str  # username of the syncing user
    poster: str
    positions: dict[str, int]
    events_per_conv: int
    setup_s: float


@dataclass
class SyncSamples:
    sync_ms: list[float] = field(default_factory=list)  # sync written -> sync_done read
    total_ms: list[float] = field(default_factory=list)  # connect -> sync_done
    client_cpu_ms: list[float] = field(default_factory=list)  # this process, sync -> sync_done
    bad: list[str] = field(default_factory=list)


async def register(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return await login(http, name)


async def login(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    body["name"] = name
    body["h"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body


async def setup_sync(base: str, convs: int, events: int) -> SyncSetup:
    t0 = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        me, poster = await register(http, f"hs{tag}me"), await register(http, f"hs{tag}po")

        async def create(i: int) -> tuple[str, int]:
            r = await http.post(
                "/v1/conversations", headers=poster["h"], json={"kind": "group", "members": [me["user"]["id"]]}
            )
            r.raise_for_status()
            c = r.json()
            return c["id"], int(c["last_seq"])

        positions = dict(await gather_limited(8, [create(i) for i in range(convs)]))

        async def post(conv: str, n: int) -> None:
            r = await http.post(
                f"/v1/conversations/{conv}/messages",
                headers=poster["h"],
                json={"client_msg_id": f"m{n}", "body": f"while you were away, number {n} of {events}"},
            )
            r.raise_for_status()

        await gather_limited(16, [post(conv, n) for n in range(events) for conv in positions])
    return SyncSetup(me["name"], poster["name"], positions, events, time.monotonic() - t0)


async def one_sync(ws_url: str, token: str, s: SyncSetup, ref: str, out: SyncSamples) -> None:
    t0 = time.perf_counter()
    ws = await WsClient.connect(ws_url)
    try:
        ws.send(json.dumps({"type": "auth", "token": token}))
        hello = orjson.loads(await ws.recv())
        if hello.get("type") != "auth_ok":
            out.bad.append(f"auth: {hello}")
            return
        frame = json.dumps({"type": "sync", "positions": s.positions, "ref": ref})
        t1, c1 = time.perf_counter(), time.process_time()
        ws.send(frame)
        got: dict[str, int] = {}
        while True:
            f = orjson.loads(await ws.recv())
            kind = f.get("type")
            if kind == "event":
                ev = f["event"]
                got[ev["conv"]] = got.get(ev["conv"], 0) + 1
            elif kind == "sync_done":
                t2, c2 = time.perf_counter(), time.process_time()
                break
            elif kind == "error":
                out.bad.append(f"error: {f}")
                return
    finally:
        await ws.close()
    want = s.events_per_conv
    short = [c for c in s.positions if got.get(c, 0) != want]
    if f.get("ref") != ref or f["truncated"] or f["not_found"] or short:
        nt, nf = len(f["truncated"]), len(f["not_found"])
        out.bad.append(f"ref={f.get('ref')} truncated={nt} not_found={nf} short={len(short)}")
        return
    out.sync_ms.append((t2 - t1) * 1000)
    out.total_ms.append((t2 - t0) * 1000)
    out.client_cpu_ms.append((c2 - c1) * 1000)


async def measure_sync(base: str, ws_url: str, s: SyncSetup, samples: int, max_s: float) -> SyncSamples:
    """``samples`` syncs one after another (each its own connection), at most ``max_s``."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        token = (await login(http, s.user))["access_token"]
    out = SyncSamples()
    deadline = time.monotonic() + max_s
    for i in range(samples):
        if time.monotonic() > deadline:
            break
        await asyncio.wait_for(one_sync(ws_url, token, s, f"s{i}", out), 30)
    return out
