"""Receivers for bench/fanout.py: one process holding many WebSocket connections
(asyncio on uvloop + `websockets` sans-I/O), counting and timing the frames they receive.

Driven over stdin/stdout by fanout.py, one JSON line each way:
- stdin, first line: `{"targets": [[url, token | null], ...], "deadline_s": s}`: one
  connection per target; with a token it authenticates first (the gateway), without it
  just listens (the reference server's `/recv`). With `"centrifugo_channel": ch` every
  connection is a Centrifugo client instead (`connect` with its token, `subscribe` to ch,
  answers the server's `{}` pings; a frame may carry several publications, one per line).
- stdout: `READY {"connected": n, "failed": m}` once every connection is up.
- then each `report` line on stdin is answered with one JSON line of what arrived since
  the last report: per step, frames and a latency histogram; frames received per 100 ms of
  the monotonic clock (`bins`); closes by code. `quit` (or stdin closing, or the deadline)
  closes the connections and exits.

A frame counts when its text carries `fo|<step>|<scheduled send time>|` (fanout.py puts it in
the message body): latency = receive time - scheduled send time, on the shared monotonic
clock of this machine. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any
from urllib.parse import urlparse

import uvloop
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

MARK = b"fo|"


def bucket_ms(key: int) -> float:
    """Latency histogram keys: 0.1 ms buckets below 100 ms, 1 ms buckets above (1000 + ms)."""
    return key / 10 if key < 1000 else float(key - 1000)


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps: dict[int, list[Any]] = {}  # step -> [frames, bytes, {bucket: n}]
        self.bins: dict[int, int] = {}
        self.closes: dict[str, int] = {}
        self.other = 0

    def on_frame(self, data: bytes, now: float) -> None:
        i = data.find(MARK)
        if i < 0:
            self.other += 1
            return
        j = data.find(b"|", i + 3)
        k = data.find(b"|", j + 1)
        step = int(data[i + 3 : j])
        ms = (now - float(data[j + 1 : k])) * 1000
        st = self.steps.get(step)
        if st is None:
            st = self.steps[step] = [0, 0, {}]
        st[0] += 1
        st[1] += len(data)
        h = st[2]
        b = int(ms * 10) if ms < 100 else 1000 + int(ms)
        h[b] = h.get(b, 0) + 1
        t = int(now * 10)
        self.bins[t] = self.bins.get(t, 0) + 1

    def report(self) -> dict[str, Any]:
        out = {"steps": self.steps, "bins": self.bins, "closes": self.closes, "other": self.other}
        self.reset()
        return out


class Receiver(asyncio.Protocol):
    """One connection. `websockets` (sans-I/O ``ClientProtocol``) does the opening handshake
    and frames what this side sends (auth, pongs, close: masked as a client must); frames
    received after the handshake are parsed here, a few lines per frame, because the
    receivers share the two cores with the server they measure: websockets' asyncio client
    costs several times more per received frame."""

    def __init__(self, url: str, token: str | None, stats: Stats) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=1 << 20)
        self.token, self.stats = token, stats
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()  # the handshake response, until its end
        self.buf = bytearray()
        self.open = False
        self.closed = False
        self.frag: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        if self.transport is not None:
            self.transport.write(b"".join(self.ws.data_to_send()))

    def data_received(self, data: bytes) -> None:
        if self.open:
            self._frames(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        self.ws.receive_data(bytes(self.head[: end + 4]))
        self.ws.events_received()
        if self.ws.state is not State.OPEN:
            self._fail(RuntimeError(f"handshake failed: {self.ws.handshake_exc!r}"))
            return
        self.open = True
        rest = bytes(self.head[end + 4 :])
        self.head.clear()
        self._hello()
        if rest:
            self._frames(rest)

    def _hello(self) -> None:
        """Once the handshake is done: authenticate (the gateway) or just listen."""
        if self.token is not None:
            self.ws.send_text(json.dumps({"type": "auth", "token": self.token}).encode())
            self._flush()
        elif not self.ready.done():
            self.ready.set_result(None)

    def _frames(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        n, pos = len(buf), 0
        clock = time.monotonic
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            size, hdr = b1 & 0x7F, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, hdr = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, hdr = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + hdr + size
            if end > n:
                break
            payload = bytes(buf[pos + hdr : end])
            pos = end
            self._frame(b0 & 0x0F, bool(b0 & 0x80), payload, clock())
        del buf[:pos]

    def _frame(self, op: int, fin: bool, payload: bytes, now: float) -> None:
        if op in (1, 0):  # text, continuation
            if not fin or self.frag:
                self.frag.append(payload)
                if not fin:
                    return
                payload = b"".join(self.frag)
                self.frag = []
            if not self.ready.done():
                first = json.loads(payload)
                if first.get("type") == "auth_ok":
                    self.ready.set_result(None)
                else:
                    self._fail(RuntimeError(f"auth refused: {first}"))
                return
            self.stats.on_frame(payload, now)
        elif op == 9:  # ping
            self.ws.send_pong(payload)
            self._flush()
        elif op == 8:  # close: answer it
            code = str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "none"
            self._closed(code)
            with contextlib.suppress(Exception):
                self.ws.send_close()
                self._flush()
            if self.transport is not None:
                self.transport.close()

    def _closed(self, code: str) -> None:
        if not self.closed:
            self.closed = True
            self.stats.closes[code] = self.stats.closes.get(code, 0) + 1

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready.done():
            self._closed("lost")
        else:
            self.ready.set_exception(ConnectionError("connection lost during set-up"))

    def close(self) -> None:
        if self.transport is None or self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.ws.send_close(1000)
            self._flush()
        self.transport.close()


class CentrifugoReceiver(Receiver):
    """A Centrifugo client (protocol v2, JSON): `connect` with the token, then `subscribe`
    to one channel; ready on the subscribe reply. A text frame carries one or more JSON
    objects, one per line: `{}` is the server's ping (answered with `{}`, or the server
    disconnects the client after its pong timeout), a line with the mark is a publication."""

    PONG = b"{}"

    def __init__(self, url: str, token: str | None, stats: Stats, channel: str) -> None:
        super().__init__(url, token, stats)
        self.channel = channel

    def _hello(self) -> None:
        self._send({"id": 1, "connect": {"token": self.token, "name": "fanout-bench"}})

    def _send(self, cmd: dict[str, Any]) -> None:
        self.ws.send_text(json.dumps(cmd).encode())
        self._flush()

    def _frame(self, op: int, fin: bool, payload: bytes, now: float) -> None:
        if op not in (1, 0):  # ping, close: as the other modes
            super()._frame(op, fin, payload, now)
            return
        if not fin or self.frag:
            self.frag.append(payload)
            if not fin:
                return
            payload = b"".join(self.frag)
            self.frag = []
        on_frame = self.stats.on_frame
        for line in payload.split(b"\n"):
            if line == b"{}":
                self.ws.send_text(self.PONG)
                self._flush()
            elif not self.ready.done():
                self._setup(line)
            elif line:
                on_frame(line, now)

    def _setup(self, line: bytes) -> None:
        reply = json.loads(line)
        if "error" in reply:
            self._fail(RuntimeError(f"centrifugo refused: {reply}"))
        elif reply.get("id") == 1:
            self._send({"id": 2, "subscribe": {"channel": self.channel}})
        elif reply.get("id") == 2:
            self.ready.set_result(None)


async def open_one(url: str, token: str | None, stats: Stats, channel: str | None = None) -> Receiver:
    u = urlparse(url)
    loop = asyncio.get_running_loop()

    def make() -> Receiver:
        if channel is None:
            return Receiver(url, token, stats)
        return CentrifugoReceiver(url, token, stats, channel)

    _t, proto = await loop.create_connection(make, u.hostname or "127.0.0.1", u.port or 80)
    await asyncio.wait_for(proto.ready, 60)
    return proto


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cfg = json.loads(await reader.readline())
    deadline = time.monotonic() + float(cfg.get("deadline_s", 1800))
    targets: list[tuple[str, str | None]] = [(u, t) for u, t in cfg["targets"]]
    channel: str | None = cfg.get("centrifugo_channel")  # set: Centrifugo clients of that channel
    for u, _ in targets:
        host = urlparse(u).hostname or ""
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            sys.exit(f"refusing non-loopback target {u}")
    stats = Stats()
    sem = asyncio.Semaphore(32)
    conns: list[Receiver] = []
    failed = 0

    async def one(url: str, token: str | None) -> None:
        nonlocal failed
        async with sem:
            try:
                conns.append(await open_one(url, token, stats, channel))
            except Exception as exc:  # reported, not fatal: the run shows it as failed
                failed += 1
                print(f"connect failed: {exc!r}", file=sys.stderr)

    await asyncio.wait_for(asyncio.gather(*(one(u, t) for u, t in targets)), max(1.0, deadline - time.monotonic()))
    print("READY " + json.dumps({"connected": len(conns), "failed": failed}), flush=True)
    try:
        while time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            cmd = line.decode().strip()
            if cmd == "report":
                print(json.dumps(stats.report()), flush=True)
            elif cmd in ("quit", ""):
                break
    finally:
        for c in conns:
            c.close()
        await asyncio.sleep(0.2)
        print("BYE", flush=True)


if __name__ == "__main__":
    uvloop.run(main())
