"""Request bodies are bounded by what the gateway reads, not by what the client claims
(hardening §2): a ``Transfer-Encoding: chunked`` body that never ends is answered 413 once
GATEWAY_MAX_REQUEST_BYTES have been read, and the gateway stops reading it. (Before, only
``Content-Length`` was checked: a chunked body of any size was read whole.)"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
from chat_devtools.testing import ClusterFactory
from helpers.chat_client import Api

CHUNK = 64 * 1024
GIVE_UP = 256 * 1024 * 1024  # what the client is willing to send; the gateway must stop far earlier


def rss_mib(pid: int | None) -> float:
    assert pid is not None
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def endless_chunked_post(host: str, port: int, path: str, token: str) -> tuple[bytes, int]:
    """POST an endless chunked JSON array; returns (the status line, bytes sent by then)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0

    async def pour() -> None:
        nonlocal sent
        piece = b"[" + b"1," * (CHUNK // 2 - 1)
        with contextlib.suppress(ConnectionError):
            while sent < GIVE_UP:
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0)  # drain() need not yield: let the reader see the answer
                sent += len(piece)
                piece = b"1," * (CHUNK // 2)

    pouring = asyncio.create_task(pour())
    try:
        status = await asyncio.wait_for(reader.readline(), 60)
    finally:
        pouring.cancel()
        writer.close()
    return status, sent


async def test_chunked_body_is_refused_while_it_is_read(cluster: ClusterFactory) -> None:
    c = cluster()
    gw = c.gateways[0]
    async with Api(c.gateway_url) as api:
        alice = await api.register_login("alice")
        rss0 = rss_mib(gw.pid)
        for path in ("/v1/conversations", "/v1/auth/login"):
            status, sent = await endless_chunked_post(gw.host, gw.port, path, alice.access_token)
            assert status.startswith(b"HTTP/1.1 413"), (path, status)
            # answered while the client was still sending (reading it whole, the gateway
            # could only answer after the end); what it read past the limit it discarded
            assert sent < GIVE_UP, (path, sent)
        assert rss_mib(gw.pid) - rss0 < 32
        # the gateway is fine afterwards
        r = await api.http.get("/v1/me", headers=alice.headers)
        assert r.status_code == 200, r.text
        rss1 = rss_mib(gw.pid)
        print(f"\nbytes sent before the 413: {sent / 2**20:.1f} MiB; gateway RSS {rss0:.0f} -> {rss1:.0f} MiB")


async def test_metrics_only_on_the_operations_port(cluster: ClusterFactory) -> None:
    """Hardening §7: /metrics is not public (404 there); the operations port
    (GATEWAY_METRICS_PORT) serves it, and /healthz and /readyz are on both."""
    c = cluster()
    gw = c.gateways[0]
    assert gw.metrics_url != gw.base_url
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(gw.base_url + "/metrics")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        r = await http.get(gw.metrics_url + "/metrics")
        assert r.status_code == 200 and "chat_gateway_sends_refused_total" in r.text
        for url in (gw.base_url, gw.metrics_url):
            assert (await http.get(url + "/healthz")).status_code == 200
            assert (await http.get(url + "/readyz")).json()["status"] == "ready"
        assert (await http.get(gw.metrics_url + "/v1/me")).status_code == 404  # no API there
