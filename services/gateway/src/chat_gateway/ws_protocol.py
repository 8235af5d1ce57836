"""uvicorn's WebSocket protocol (websockets-sansio) with PROTOCOL §4's liveness rule.

uvicorn pings every ``heartbeat_s`` and, with a ping timeout, drops a connection whose pong
does not come back in time: only a pong counts. PROTOCOL §4 says *anything* received from
the peer — data, ping or pong — counts as life, and a connection silent for 3 x heartbeat_s
is dropped. So when the pong deadline passes but bytes arrived after that ping was sent,
the peer is alive: the next ping is scheduled instead of failing the connection (close
1011, "keepalive ping timeout", as before, when it really was silent).

Memory (bench/idle.py): uvicorn's receive queue and ``writable`` event are replaced by the
lighter ``light.Queue`` / ``light.Flag`` (asyncio's allocate ~4 KiB per connection up
front), and the handshake's request and response objects are let go once the connection
is accepted.

It also offers the connection a ``FrameSink`` (``wire.py``): prepared text frames written
straight to the transport, for the fanout's fast path, through the ASGI scope's
``extensions`` (``frame_sink(scope)``). Writes are refused (``ready()`` false) before the
handshake completes, after a close was sent or received, and while the transport's buffer
is above its high-water mark, so the only frames that bypass uvicorn's ``send`` are whole
data frames on an open connection, exactly what ``send`` would have written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from chat_gateway.light import Flag, Queue
from chat_gateway.wire import FrameSink

SINK_EXTENSION = "chat.frame_sink"


class LivelyWebSocketProtocol(WebSocketsSansIOProtocol):
    # uvicorn's protocol sets 37 attributes: past 30 an instance dict no longer shares its
    # keys with the other instances' (~1.6 KiB per connection). In slots they take 8 bytes
    # each; an attribute a later uvicorn adds goes to the instance dict, as before.
    __slots__ = (
        "app",
        "app_state",
        "asgi_version",
        "client",
        "close_sent",
        "close_timeout",
        "close_timer",
        "config",
        "conn",
        "connections",
        "curr_msg_data_type",
        "default_headers",
        "disconnected",
        "frames",
        "handshake_complete",
        "handshake_initiated",
        "initial_response",
        "last_ping_rtt",
        "last_received",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "queue",
        "read_paused",
        "request",
        "response",
        "root_path",
        "scheme",
        "scope",
        "server",
        "tasks",
        "transport",
        "writable",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_received = 0.0
        self.queue = Queue()  # type: ignore[assignment]  # put_nowait / get / empty, as uvicorn uses it
        self.writable = Flag()  # type: ignore[assignment]  # wait / set / clear / is_set
        self.writable.set()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # a 101 answer: the ASGI app runs with this scope
            scope["extensions"][SINK_EXTENSION] = {"sink": ProtocolSink(self)}

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            # Accepted (or refused): only the accept used them. Headers stay in the scope.
            del self.request, self.response

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


class ProtocolSink:
    """``FrameSink`` over the protocol's transport."""

    __slots__ = ("proto",)

    def __init__(self, proto: WebSocketsSansIOProtocol) -> None:
        self.proto = proto

    def ready(self) -> bool:
        p = self.proto
        return (
            p.handshake_complete
            and not p.close_sent
            and not p.disconnected
            and p.initial_response is None
            and p.writable.is_set()
            and not p.transport.is_closing()
        )

    def write(self, data: bytes) -> None:
        self.proto.transport.write(data)

    async def wait_ready(self) -> None:
        await self.proto.writable.wait()  # also set when the connection is lost


def frame_sink(scope: Mapping[str, Any]) -> FrameSink | None:
    """The connection's ``FrameSink``, when the server offers one (uvicorn with this protocol)."""
    ext = (scope.get("extensions") or {}).get(SINK_EXTENSION)
    return ext.get("sink") if isinstance(ext, dict) else None


class DirectWebSocket:
    """ASGI middleware: a WebSocket at ``path`` goes straight to ``endpoint``.

    Added last in ``create_app`` (the outermost of the app's own middlewares), so it runs
    inside Starlette's and FastAPI's outer layers (``scope["app"]`` is set) and before the
    rest: request logging, body limits and CORS (HTTP only), FastAPI's exception and exit-
    stack layers, the router and the route's wrappers. Those do nothing for this endpoint,
    but each of their coroutine frames and exit stacks lived as long as the connection:
    ~10 KiB per idle connection (bench/idle.py). The route stays registered (same endpoint).
    """

    def __init__(self, app: ASGIApp, path: str, endpoint: Callable[[WebSocket], Awaitable[None]]) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == scope.get("root_path", "") + self.path:
            await self.endpoint(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)
