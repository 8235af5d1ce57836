"""A minimal WebSocket client (RFC 6455, no extensions) for the sync workload of
bench/history.py.

The `websockets` library spends ~13 µs of client CPU per received frame: ~26 ms of the
2-core box per sync of 2,000 events, taken from the servers being measured. This client
reads whole buffers and slices frames out of them (~1-2 µs a frame). It sends masked text
frames, answers pings, and hands every text (or binary) message to the caller as bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from urllib.parse import urlparse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    pass


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    reps = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class WsClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = bytearray()
        self.pos = 0
        self.parts: list[bytes] = []  # of a fragmented message

    @classmethod
    async def connect(cls, url: str, timeout: float = 10.0) -> WsClient:
        u = urlparse(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET " + (u.path or "/").encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )  # fmt: skip
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        accept = base64.b64encode(hashlib.sha1(key + GUID, usedforsecurity=False).digest())  # RFC 6455 §4.2.2
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            writer.close()
            raise Closed(f"handshake refused: {head[:200]!r}")
        return cls(reader, writer)

    def send(self, text: str) -> None:
        self.writer.write(_frame(OP_TEXT, text.encode()))

    async def recv(self) -> bytes:
        """The next text or binary message."""
        while True:
            got = self._next_frame()
            if got is None:
                data = await self.reader.read(1 << 18)
                if not data:
                    raise Closed("connection closed")
                if self.pos:
                    del self.buf[: self.pos]
                    self.pos = 0
                self.buf += data
                continue
            fin, opcode, payload = got
            if opcode == OP_PING:
                self.writer.write(_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                raise Closed(f"closed by the server: {payload[:2].hex()} {payload[2:]!r}")
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                self.parts.append(payload)
                if fin:
                    msg = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
                    self.parts = []
                    return msg

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        n, at = b1 & 0x7F, pos + 2
        if n == 126:
            if len(buf) - at < 2:
                return None
            n, at = struct.unpack_from("!H", buf, at)[0], at + 2
        elif n == 127:
            if len(buf) - at < 8:
                return None
            n, at = struct.unpack_from("!Q", buf, at)[0], at + 8
        if b1 & 0x80:
            raise Closed("a masked frame from the server")
        if len(buf) - at < n:
            return None
        self.pos = at + n
        return bool(b0 & 0x80), b0 & 0x0F, bytes(buf[at : at + n])

    async def close(self) -> None:
        try:
            self.writer.write(_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, TimeoutError):
            pass
