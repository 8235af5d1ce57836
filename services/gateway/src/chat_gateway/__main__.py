"""``python -m chat_gateway``: uvicorn, with a drain on SIGTERM before uvicorn's own shutdown.

uvicorn's shutdown closes every WebSocket at once with 1012 (``connection.shutdown()`` of
the websockets-sansio protocol). On SIGTERM we first run the drain (drain.py): not ready,
no new work, connections closed with 1012 spread over ``GATEWAY_DRAIN_S``, answers in
flight written first; only then does uvicorn shut down (in-flight REST, lifespan: NATS
drained), and the process exits 0. A second SIGTERM, or SIGINT, shuts down at once.
"""

import asyncio
import signal
import sys
from types import FrameType

import uvicorn

from chat_gateway.drain import Drain
from chat_gateway.main import create_app
from chat_gateway.settings import GatewaySettings
from chat_gateway.ws_protocol import LivelyWebSocketProtocol


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.drain.draining and not self.should_exit:
            self.drain.begin()  # /readyz 503 and new connections refused from now on
            return  # the main loop starts the drain (on_tick), then exits
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and self._drain_task is None:
            self._drain_task = asyncio.create_task(self.drain.run())
        if self._drain_task is not None and self._drain_task.done():
            self.should_exit = True
        return await super().on_tick(counter)


def main() -> None:
    s = GatewaySettings()
    app = create_app(s)
    config = uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        log_config=None,
        ws=LivelyWebSocketProtocol,  # websockets-sansio; any frame received counts as life
        ws_max_size=s.ws_max_message_bytes,
        ws_ping_interval=s.heartbeat_s,
        # Silent for 3 x heartbeat_s (one interval plus this timeout) -> dropped.
        ws_ping_timeout=2 * s.heartbeat_s,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, app.state.drain)
    server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run: start-up failed


if __name__ == "__main__":
    main()
