"""The reference for bench/fanout.py: a bare broadcast server, `websockets` on uvloop.

Connections on path `/send` are senders; every text frame a sender sends is broadcast as
is to every connection on `/recv` with `websockets.broadcast()` (no compression, no
per-connection queue of its own: what the library does is what is measured). Loopback
only; prints `READY <port>` once listening and exits on SIGTERM or when stdin closes.

    .venv/bin/python bench/fanout_reference.py --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main(port: int, ping_interval: float) -> None:
    receivers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        if path == "/send":
            async for msg in ws:
                if isinstance(msg, str):
                    broadcast(receivers, msg)
            return
        receivers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            receivers.discard(ws)

    stop = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    # the parent going away (stdin closed) stops us too
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        await reader.read()
        if not stop.done():
            stop.set_result(None)

    watcher = asyncio.create_task(watch_stdin())
    async with serve(
        handler, "127.0.0.1", port, compression=None, max_size=1 << 20, ping_interval=ping_interval, backlog=4096
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"READY {bound}", flush=True)
        await stop
    watcher.cancel()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ping-interval", type=float, default=5.0, help="as the gateway's heartbeat_s")
    a = ap.parse_args()
    uvloop.run(main(a.port, a.ping_interval))
