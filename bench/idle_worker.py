"""Idle clients for bench/idle.py: one process holding many authenticated WebSocket
connections that send nothing after ``auth`` and answer every ping (PROTOCOL §4: the
server pings every ``heartbeat_s``; a pong counts as life).

The connections are ``fanout_worker.Receiver``s (asyncio on uvloop, `websockets` sans-I/O
for the handshake and what this side sends, received frames parsed in a few lines), which
authenticate, answer pings with pongs and answer a close. Here each one also counts the
pings it got, and the text frames that arrive are counted by ``type`` (presence frames by
status).

Driven over stdin/stdout by idle.py, one JSON line each way:
- stdin, first line: ``{"deadline_s": s}``; stdout: ``READY``.
- ``open [[url, token], ...]``: opens those connections (32 at a time), answers
  ``OPENED {"connected": n, "failed": m}``.
- ``report``: one JSON line about the connections so far: how many are open, closes by
  code, frames by type, and the pings each open connection got since the last report
  (min / max / total). ``quit`` (or stdin closing, or the deadline) closes them and exits.
Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlparse

import uvloop
from fanout_worker import Receiver


class IdleStats:
    """What ``Receiver`` reports into: closes by code, and the text frames by type."""

    def __init__(self) -> None:
        self.closes: dict[str, int] = {}
        self.frames: dict[str, int] = {}

    def on_frame(self, data: bytes, now: float) -> None:
        try:
            frame = json.loads(data)
            kind = str(frame.get("type"))
            if kind == "presence":
                kind = f"presence:{frame.get('status')}"
        except ValueError:
            kind = "undecodable"
        self.frames[kind] = self.frames.get(kind, 0) + 1


class IdleClient(Receiver):
    """A connection that only answers pings (``Receiver`` does) and counts them."""

    def __init__(self, url: str, token: str | None, stats: Any) -> None:
        super().__init__(url, token, stats)
        self.pings = 0
        self.pings_reported = 0

    def _frame(self, op: int, fin: bool, payload: bytes, now: float) -> None:
        if op == 9:
            self.pings += 1
        super()._frame(op, fin, payload, now)


async def open_one(url: str, token: str, stats: IdleStats) -> IdleClient:
    u = urlparse(url)
    loop = asyncio.get_running_loop()
    _t, proto = await loop.create_connection(lambda: IdleClient(url, token, stats), u.hostname, u.port)
    await asyncio.wait_for(proto.ready, 60)
    return proto


async def open_all(targets: list[list[str]], stats: IdleStats, conns: list[IdleClient]) -> dict[str, int]:
    sem = asyncio.Semaphore(32)
    failed = 0

    async def one(url: str, token: str) -> None:
        nonlocal failed
        async with sem:
            try:
                conns.append(await open_one(url, token, stats))
            except Exception as exc:  # reported, not fatal: the run shows it as failed
                failed += 1
                print(f"connect failed: {exc!r}", file=sys.stderr)

    before = len(conns)
    await asyncio.gather(*(one(u, t) for u, t in targets))
    return {"connected": len(conns) - before, "failed": failed}


def report(stats: IdleStats, conns: list[IdleClient]) -> dict[str, Any]:
    live = [c for c in conns if not c.closed]
    got = [c.pings - c.pings_reported for c in live]
    for c in live:
        c.pings_reported = c.pings
    return {
        "connections": len(conns),
        "open": len(live),
        "closes": dict(stats.closes),
        "frames": dict(stats.frames),
        "pings": {"min": min(got, default=0), "max": max(got, default=0), "total": sum(got)},
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cfg = json.loads(await reader.readline())
    deadline = time.monotonic() + float(cfg.get("deadline_s", 1800))
    stats = IdleStats()
    conns: list[IdleClient] = []
    print("READY", flush=True)
    try:
        while time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            cmd, _, arg = line.decode().strip().partition(" ")
            if cmd == "open":
                targets = json.loads(arg)
                for u, _t in targets:
                    host = urlparse(u).hostname or ""
                    if not (host.startswith("127.") or host in ("localhost", "::1")):
                        sys.exit(f"refusing non-loopback target {u}")
                res = await asyncio.wait_for(open_all(targets, stats, conns), max(1.0, deadline - time.monotonic()))
                print("OPENED " + json.dumps(res), flush=True)
            elif cmd == "report":
                print(json.dumps(report(stats, conns)), flush=True)
            elif cmd in ("quit", ""):
                break
    finally:
        for c in conns:
            c.close()
        await asyncio.sleep(0.5)
        print("BYE", flush=True)


if __name__ == "__main__":
    uvloop.run(main())
