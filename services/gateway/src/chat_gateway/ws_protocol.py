"""uvicorn's WebSocket protocol (websockets-sansio) with PROTOCOL §4's liveness rule.

uvicorn pings every ``heartbeat_s`` and, with a ping timeout, drops a connection whose pong
does not come back in time: only a pong counts. PROTOCOL §4 says *anything* received from
the peer — data, ping or pong — counts as life, and a connection silent for 3 x heartbeat_s
is dropped. So when the pong deadline passes but bytes arrived after that ping was sent,
the peer is alive: the next ping is scheduled instead of failing the connection (close
1011, "keepalive ping timeout", as before, when it really was silent).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LivelyWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_received = 0.0

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        super().data_received(data)

    def keepalive_timeout(self) -> None:
        if self.last_received >= self.ping_sent_at and not (self.close_sent or self.transport.is_closing()):
            self.pong_timer = None
            self.pending_ping_payload = None  # a late pong for it is ignored as stale
            self.schedule_ping()
            return
        super().keepalive_timeout()
