"""PROTOCOL §4 heartbeats: anything received from the peer counts as life. A client that
never answers the server's WebSocket pings but keeps sending frames stays connected; once
it goes silent it is dropped within about 3 x heartbeat_s.

The client here is a raw websockets sans-I/O connection whose automatic pongs are thrown
away, so the server sees only the frames the test sends."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from helpers.chat_client import Api
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.uri import parse_uri

HEARTBEAT_S = 1.0


class PonglessClient:
    def __init__(self, url: str) -> None:
        self.proto = ClientProtocol(parse_uri(url))
        self.url = url
        self.frames: list[dict[str, Any]] = []
        self.pings = 0
        self.closed = asyncio.Event()
        self.opened = asyncio.Event()

    async def open(self) -> None:
        uri = parse_uri(self.url)
        self.reader, self.writer = await asyncio.open_connection(uri.host, uri.port)
        self.proto.send_request(self.proto.connect())
        self._flush()
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.opened.wait(), 10)

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            self.writer.write(chunk)

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self.proto.receive_data(data)
                self.proto.data_to_send()  # the automatic pongs (and echoes): never sent
                for ev in self.proto.events_received():
                    self.opened.set()  # the handshake's response comes first
                    opcode = getattr(ev, "opcode", None)
                    if opcode == Opcode.TEXT:
                        self.frames.append(json.loads(ev.data))
                    elif opcode == Opcode.PING:
                        self.pings += 1
                    elif opcode == Opcode.CLOSE:
                        return
        finally:
            self.closed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        self.proto.send_text(json.dumps(frame).encode())
        self._flush()
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        self._task.cancel()


async def test_frames_keep_a_connection_alive_without_pongs(cluster: ClusterFactory) -> None:
    c = cluster(env={**NO_RATE_LIMITS, "GATEWAY_HEARTBEAT_S": str(HEARTBEAT_S)})
    async with Api(c.gateway_url) as api:
        user = await api.register_login("live")
    client = PonglessClient(c.ws_urls[0])
    await client.open()
    try:
        await client.send({"type": "auth", "token": user.access_token})
        busy_until = time.monotonic() + 6 * HEARTBEAT_S  # twice the silence limit
        while time.monotonic() < busy_until:
            assert not client.closed.is_set(), "dropped while sending frames"
            await client.send({"type": "ping"})
            await asyncio.sleep(HEARTBEAT_S / 2)
        assert client.pings >= 2  # the server did ping (again after each missed pong), and got no pong
        assert sum(f["type"] == "pong" for f in client.frames) >= 8
        silent_from = time.monotonic()
        await asyncio.wait_for(client.closed.wait(), 10 * HEARTBEAT_S)  # now silent: dropped
        assert time.monotonic() - silent_from >= 2 * HEARTBEAT_S
    finally:
        await client.close()
