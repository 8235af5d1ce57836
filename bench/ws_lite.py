"""A cheap WebSocket client connection for the load generators (asyncio on uvloop).

`websockets`' sans-I/O ``ClientProtocol`` does the opening handshake and frames what this
side sends (masked, as a client must: auth, sends, pongs, close). Frames received after the
handshake are parsed here in a few lines each: the generators share the two cores with the
system they measure, and websockets' asyncio client costs several times more per received
frame, so at a few thousand frames/s the generator, not the server, set the latency.

Text frames go to ``on_text(payload, monotonic_now)`` once it is set, to ``recv()`` before.
Pings are answered; a close is answered and ends the connection (``closed`` resolves with
the code). Server frames are never masked; fragmented text is joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import urlparse

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

OnText = Callable[[bytes, float], None]


class LiteClient(asyncio.Protocol):
    def __init__(self, url: str, max_size: int = 1 << 20) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=max_size)
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.on_text: OnText | None = None
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()  # the handshake response, until its end
        self._buf = bytearray()
        self._open = False
        self._frag: list[bytes] = []

    # -- sending -----------------------------------------------------------------------------
    def send_text(self, data: bytes) -> None:
        if self.closed.done() or self.transport is None:
            raise ConnectionError("connection closed")
        self.ws.send_text(data)
        self._flush()

    async def recv(self, timeout: float = 30.0) -> bytes:
        """The next text frame (only while ``on_text`` is not set)."""
        get = asyncio.ensure_future(self.inbox.get())
        done, _ = await asyncio.wait({get, self.closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        raise ConnectionError("closed" if self.closed.done() else "no frame in time")

    def close(self, code: int = 1000) -> None:
        if self.transport is None or self.closed.done():
            return
        with contextlib.suppress(Exception):
            self.ws.send_close(code)
            self._flush()
        self.transport.close()
        self.closed.set_result(None)

    def _flush(self) -> None:
        if self.transport is not None:
            self.transport.write(b"".join(self.ws.data_to_send()))

    # -- receiving ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._open:
            self._frames(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        self.ws.receive_data(bytes(self._head[: end + 4]))
        self.ws.events_received()
        if self.ws.state is not State.OPEN:
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(f"handshake failed: {self.ws.handshake_exc!r}"))
            if self.transport is not None:
                self.transport.close()
            return
        self._open = True
        rest = bytes(self._head[end + 4 :])
        self._head.clear()
        self.opened.set_result(None)
        if rest:
            self._frames(rest)

    def _frames(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        n, pos = len(buf), 0
        now = time.monotonic()
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
            self._frame(b0 & 0x0F, bool(b0 & 0x80), payload, now)
        del buf[:pos]

    def _frame(self, op: int, fin: bool, payload: bytes, now: float) -> None:
        if op in (1, 0):  # text, continuation
            if not fin or self._frag:
                self._frag.append(payload)
                if not fin:
                    return
                payload = b"".join(self._frag)
                self._frag = []
            if self.on_text is not None:
                self.on_text(payload, now)
            else:
                self.inbox.put_nowait(payload)
        elif op == 9:  # ping
            self.ws.send_pong(payload)
            self._flush()
        elif op == 8:  # close: answer it
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            with contextlib.suppress(Exception):
                self.ws.send_close()
                self._flush()
            if not self.closed.done():
                self.closed.set_result(code)
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(url: str, timeout: float = 60.0) -> LiteClient:
    """An open connection to ``url`` (``ws://host:port/path``, loopback only)."""
    u = urlparse(url)
    host = u.hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError(f"refusing non-loopback target {url}")
    loop = asyncio.get_running_loop()
    _t, proto = await loop.create_connection(lambda: LiteClient(url), host, u.port)
    await asyncio.wait_for(proto.opened, timeout)
    return proto
