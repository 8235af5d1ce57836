"""A minimal HTTP/1.1 keep-alive GET client for bench/history.py.

httpx spends ~0.3-0.5 ms of client CPU per request; with four readers in one process on a
2-core box that would be part of the measured latency. This client writes one request
and reads one response (Content-Length or chunked) on a persistent connection: a few
tens of microseconds per request.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse


class HttpError(Exception):
    pass


class HttpConn:
    def __init__(self, base_url: str) -> None:
        u = urlparse(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"need an http:// base url, got {base_url!r}")
        self.host, self.port = u.hostname, u.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> HttpConn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = self.reader = None

    async def get(self, path: str, token: str, timeout: float = 10.0) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n".encode()
        )
        try:
            return await asyncio.wait_for(self._response(self.reader), timeout)
        except BaseException:
            await self.close()  # a half-read response must not be read as the next one
            raise

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            return status, await reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return status, b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        raise HttpError(f"response without a length: {headers}")
