"""Membership benchmark: how fast membership changes reach devices, and what listing many
conversations costs.

1. Propagation. A member has one WebSocket device on EACH gateway. An owner (REST on the
   first gateway) adds them to a private channel, then removes them, --rounds times.
   Latency = from the start of the REST call to the `member_joined` / `member_left` about
   that member arriving on each device. While the member is out, the owner posts a message
   into the channel: a removed member's device must never see it (`leaked` must be 0).
2. Listing. A user who belongs to --convs conversations lists them (`GET
   /v1/conversations`) --lists times, one after another.

Bounded: --rounds and --lists are counts, every wait has a timeout, and the whole run stops
after --max-seconds. Loopback only. Prints one JSON line.

    python bench/membership.py --gateway http://127.0.0.1:8080 --gateway http://127.0.0.1:8090
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
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


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 2)


async def new_user(http: httpx.AsyncClient, tag: str) -> dict[str, Any]:
    name = f"mb{tag}{uuid.uuid4().hex[:8]}"
    r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    body["h"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body


class Device:
    """One WebSocket connection; every event it receives goes to its queue."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.events: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue(maxsize=100_000)
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, compression=None)
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        assert json.loads(await self.ws.recv())["type"] == "auth_ok"
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            f = orjson.loads(raw)
            if f.get("type") == "event":
                self.events.put_nowait((time.perf_counter(), f["event"]))

    async def wait_for(self, conv: str, kind: str, user_id: str, timeout: float = 5.0) -> tuple[float, int]:
        """(arrival time, messages of `conv` seen before it)."""
        seen_messages = 0
        deadline = time.perf_counter() + timeout
        while True:
            at, ev = await asyncio.wait_for(self.events.get(), max(0.001, deadline - time.perf_counter()))
            if ev.get("conv") != conv:
                continue
            if ev.get("kind") == "message":
                seen_messages += 1
            if ev.get("kind") == kind and ev.get("user_id") == user_id:
                return at, seen_messages

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self.ws is not None:
            await self.ws.close()


async def propagation(gateways: list[str], rounds: int) -> dict[str, Any]:
    ws_urls = [g.replace("http://", "ws://").rstrip("/") + "/ws" for g in gateways]
    async with httpx.AsyncClient(base_url=gateways[0], timeout=30) as http:
        owner, member = await new_user(http, "o"), await new_user(http, "m")
        r = await http.post(
            "/v1/conversations",
            headers=owner["h"],
            json={"kind": "channel", "name": f"mb-{uuid.uuid4().hex[:8]}", "private": True},
        )
        r.raise_for_status()
        conv = r.json()["id"]
        mid = member["user"]["id"]
        devices = [Device(u, member["access_token"]) for u in ws_urls]
        for d in devices:
            await d.open()
        added: list[float] = []
        removed: list[float] = []
        leaked = 0
        try:
            for i in range(rounds):
                t0 = time.perf_counter()
                r = await http.post(f"/v1/conversations/{conv}/members", headers=owner["h"], json={"user_id": mid})
                r.raise_for_status()
                for d in devices:
                    at, seen = await d.wait_for(conv, "member_joined", mid)
                    added.append((at - t0) * 1000)
                    leaked += seen  # messages posted while the member was out
                t0 = time.perf_counter()
                r = await http.delete(f"/v1/conversations/{conv}/members/{mid}", headers=owner["h"])
                r.raise_for_status()
                for d in devices:
                    at, _ = await d.wait_for(conv, "member_left", mid)
                    removed.append((at - t0) * 1000)
                r = await http.post(
                    f"/v1/conversations/{conv}/messages",
                    headers=owner["h"],
                    json={"client_msg_id": f"out-{i}", "body": "while you were out"},
                )
                r.raise_for_status()
        finally:
            for d in devices:
                await d.close()
    return {
        "rounds": rounds,
        "devices": len(devices),
        "add_ms": {"p50": pct(added, 50), "p99": pct(added, 99), "max": pct(added, 100)},
        "remove_ms": {"p50": pct(removed, 50), "p99": pct(removed, 99), "max": pct(removed, 100)},
        "leaked": leaked,
    }


async def listing(gateway: str, convs: int, lists: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        user, other = await new_user(http, "l"), await new_user(http, "p")
        sem = asyncio.Semaphore(8)

        async def create() -> None:
            async with sem:
                r = await http.post(
                    "/v1/conversations",
                    headers=user["h"],
                    json={"kind": "group", "members": [other["user"]["id"]]},
                )
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(convs)))
        setup_s = time.perf_counter() - t0
        lat: list[float] = []
        size = 0
        for _ in range(lists):
            t0 = time.perf_counter()
            r = await http.get("/v1/conversations", headers=user["h"])
            lat.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            n = len(r.json()["conversations"])
            assert n == convs, f"listed {n} conversations, expected {convs}"
            size = len(r.content)
    return {
        "convs": convs,
        "create_per_s": round(convs / setup_s, 1),
        "list_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
        "list_bytes": size,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"propagation": await propagation(args.gateway, args.rounds)}
    out["listing"] = await listing(args.gateway[-1], args.convs, args.lists)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--convs", type=int, default=1000)
    ap.add_argument("--lists", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    for g in args.gateway:
        _check_loopback(g)
    if not (0 < args.rounds <= 10_000 and 0 < args.convs <= 20_000 and 0 < args.lists <= 1_000):
        sys.exit("counts out of range")
    res = asyncio.run(asyncio.wait_for(main_async(args), args.max_seconds))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
