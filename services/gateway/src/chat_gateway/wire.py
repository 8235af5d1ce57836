"""Outbound frames as bytes on the wire, and the socket they can be written to directly.

A server-to-client WebSocket frame is not masked (RFC 6455 §5.1), so the bytes of one text
frame are the same for every recipient: ``OutFrame`` builds them once (header + UTF-8
payload, no compression: ``ws_per_message_deflate`` is off) and the fanout writes that one
``bytes`` object to every local recipient's socket. ``FrameSink`` is that socket as the
connection sees it: synchronous writes of prepared frames, no ASGI message, no task and
no ``await`` per frame (``ws_protocol.py`` provides it over uvicorn's protocol).
"""

from __future__ import annotations

import struct
from typing import Protocol

_TEXT_FIN = 0x81  # FIN + opcode 1 (text); RSV bits 0: no extension


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame carrying ``payload`` (UTF-8)."""
    n = len(payload)
    if n < 126:
        return bytes((_TEXT_FIN, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", _TEXT_FIN, 126, n) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, n) + payload


class OutFrame:
    """One JSON text frame to write to one or many connections: the text (for transports
    without a ``FrameSink``) and, built on first use and then shared, its wire bytes.
    ``len()`` is the text's length, which the outbound bounds count."""

    __slots__ = ("_wire", "size", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = len(text)
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        w = self._wire
        if w is None:
            w = self._wire = text_frame(self.text.encode())
        return w

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"OutFrame({self.text[:60]!r})"


def out_frame(frame: str | OutFrame) -> OutFrame:
    return frame if type(frame) is OutFrame else OutFrame(frame)  # type: ignore[arg-type]


class FrameSink(Protocol):
    """A client socket that takes prepared frames synchronously."""

    def ready(self) -> bool:
        """Open (handshake done, no close sent or received) and below its write buffer's
        high-water mark: a write now is taken without queueing behind the peer."""
        ...

    def write(self, data: bytes) -> None:
        """Write whole frames (``OutFrame.wire``, possibly several joined)."""
        ...

    async def wait_ready(self) -> None:
        """Until the write buffer drained below its low-water mark, or the socket closed."""
        ...
