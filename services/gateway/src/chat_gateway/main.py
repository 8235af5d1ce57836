"""Gateway: ``create_app(settings)``; resources are built in the lifespan."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from chat_bus import bus, streams
from chat_bus.rpc import RpcClient
from chat_common.app import install_error_handlers, install_ops_routes, problem_response
from chat_common.heap import freeze_startup_heap
from chat_common.logging import setup_logging
from chat_common.runtime_metrics import LoopLagMonitor
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.logctx import bind
from fastapi import FastAPI, Request, WebSocket
from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_gateway.admission import Admission
from chat_gateway.api.accounts import router as accounts_router
from chat_gateway.api.channels import router as channels_router
from chat_gateway.api.deps import Resources
from chat_gateway.api.media import router as media_router
from chat_gateway.api.messages_ops import router as messages_ops_router
from chat_gateway.api.presence import router as presence_router
from chat_gateway.api.privacy import router as privacy_router
from chat_gateway.api.routes import router
from chat_gateway.api.search import router as search_router
from chat_gateway.body_limit import BodyLimit
from chat_gateway.client_address import parse_networks
from chat_gateway.core import Core
from chat_gateway.drain import Drain
from chat_gateway.hub import Hub
from chat_gateway.limits import Limits, rules_from
from chat_gateway.media_client import MediaClient
from chat_gateway.media_urls import UrlSigner
from chat_gateway.nats_bus import NatsBus, RpcMediaApi, RpcMessagesApi
from chat_gateway.openapi import install_openapi
from chat_gateway.ops_port import OpsPort
from chat_gateway.presence_reporter import PresenceReporter
from chat_gateway.receipts import ReceiptCoalescer
from chat_gateway.revocations import Revocations
from chat_gateway.sends import Sender
from chat_gateway.settings import GatewaySettings
from chat_gateway.tokens import TokenVerifier
from chat_gateway.typing_relay import TypingRelay
from chat_gateway.web import install_web, origin_allowed
from chat_gateway.ws import Session
from chat_gateway.ws_protocol import DirectWebSocket

log = logging.getLogger("chat.gateway")
WS_ORIGIN_REFUSED = Counter(
    "chat_gateway_ws_origin_refused_total", "WebSocket upgrades refused: Origin not allowed (GATEWAY_ALLOWED_ORIGINS)"
)
HTTP_LATENCY = Histogram(
    "chat_gateway_http_seconds",
    "REST request handling time",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestLog:
    """Every HTTP request: an id (``X-Request-Id``, bound on its log lines here and in the
    services it calls), its latency metric and, under /v1, one log line; /v1 refused while
    draining. Pure ASGI: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) runs each
    request through an extra task and memory streams (bench/history.py)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope["path"].startswith("/v1"):
            err = ChatError(ErrorCode.UNAVAILABLE, "gateway shutting down; retry", retry_after_ms=1000)
            await problem_response(err, Request(scope))(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        bind(request=request_id)  # on this request's log lines here and in the services it calls
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
        path = getattr(scope.get("route"), "path", "unmatched")
        HTTP_LATENCY.labels(scope["method"], path, str(status)).observe(time.perf_counter() - started)
        if path.startswith("/v1"):
            ms = round((time.perf_counter() - started) * 1000, 2)
            log.info("request", extra={"method": scope["method"], "route": path, "status": status, "ms": ms})


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    setup_logging("gateway", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await bus.connect(settings.nats_url, f"gateway-{settings.gateway_id}", auth=settings.nats_auth("gateway"))
        # The gateway publishes into CHAT_CMDS: make sure it exists even before messages starts.
        await bus.ensure_stream(nc.jetstream(), streams.cmd_stream(settings.js_replicas, settings.js_cmd_max_bytes))
        rpc = RpcClient(nc, settings.rpc_timeout_s)
        nbus, messages = NatsBus(nc), RpcMessagesApi(rpc)
        verifier = TokenVerifier(rpc, settings.jwt_issuer, settings.jwt_audience)
        admission = Admission(
            settings.send_max_inflight,
            settings.send_min_inflight,
            settings.send_target_s,
            factor=settings.send_target_factor,
            floor_s=settings.send_target_floor_s,
            # a quiet gateway still takes two clients' whole pipelines at once (a reconnect
            # flushing its outbox is a burst, not overload)
            idle_limit=2 * settings.connection_max_inflight_sends,
        )
        media = (
            MediaClient(settings.media_url, settings.media_token.get_secret_value(), settings.media_timeout_s)
            if settings.media_url
            else None
        )
        signer = UrlSigner.from_key(settings.media_url_key.get_secret_value(), settings.media_url_ttl_s)
        sender = Sender(
            nbus,
            messages,
            settings.gateway_id,
            settings.send_timeout_s,
            settings.send_republish_after_s,
            admission,
            media=RpcMediaApi(rpc) if media is not None else None,
        )
        sender.limits = limits = Limits(rules_from(settings))
        await sender.start()
        # admission also judges by this gateway's own delay (admission.py)
        lag_watch = LoopLagMonitor(interval=0.05, on_lag=admission.loop_lag, observe=False)
        lag_watch.start()
        app.state.hub = Hub(nbus, messages, settings.gap_fill_after_s, settings.gap_give_up_s)
        app.state.hub.personalize = signer.event
        # Presence: who is connected here, reported to the presence service; typing relay.
        reporter = PresenceReporter(
            nbus, app.state.hub.users, settings.gateway_id, settings.presence_interval_s, settings.presence_batch_s
        )
        app.state.hub.on_user_change = reporter.changed
        await reporter.start()
        app.state.typing = TypingRelay(nbus, app.state.hub, settings.typing_interval_s, settings.typing_expires_ms)
        verifier.deny = revocations = Revocations(nbus, rpc, app.state.hub, settings.revocation_resync_s)
        await revocations.start()
        app.state.resources = Resources(
            settings, rpc, verifier, sender, limits, signer, parse_networks(settings.trusted_proxies), media
        )
        receipts = ReceiptCoalescer(rpc, settings.receipt_window_s, settings.receipt_max_batch)
        await receipts.start()
        app.state.core = Core(
            settings, app.state.hub, verifier, sender, messages, limits, receipts, app.state.typing, signer
        )
        app.state.nc = nc
        ops = OpsPort(settings.metrics_host, settings.metrics_port, ready, app)
        await ops.start()
        freeze_startup_heap()  # chat_common.heap: full collections skip start-up's objects
        try:
            yield
        finally:
            await ops.stop()
            await lag_watch.stop()
            await receipts.stop()
            if media is not None:
                await media.close()
            await revocations.stop()
            await reporter.stop()
            await bus.close(nc)

    app = FastAPI(title="chat gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    # SIGTERM (__main__): stop taking work, close WebSockets with 1012 over DRAIN_S (drain.py).
    app.state.drain = drain = Drain(settings.drain_s, settings.send_timeout_s + 1)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(channels_router)
    app.include_router(accounts_router)
    app.include_router(messages_ops_router)
    app.include_router(presence_router)
    app.include_router(privacy_router)
    app.include_router(media_router)
    app.include_router(search_router)
    install_openapi(app)  # the complete /openapi.json; 405 with Allow for a known path's other methods

    # Every route's body is bounded while it is read (chunked bodies included); inside the
    # middleware below, so refusals are logged and measured like any answer.
    app.add_middleware(BodyLimit, limit_for=lambda scope: _body_limit(settings, scope))

    app.add_middleware(RequestLog, drain=drain)

    @app.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), settings.allowed_origins):
            WS_ORIGIN_REFUSED.inc()
            await websocket.close(code=1008)  # before accept: the handshake is answered 403
            return
        await drain.serve(websocket, Session(websocket, websocket.app.state.core))

    async def ready(request: Request) -> dict[str, bool]:
        nc = getattr(request.app.state, "nc", None)
        return {"nats": bool(nc and nc.is_connected), "accepting": not drain.draining}

    install_ops_routes(app, ready, metrics=False)  # /metrics: the operations port only
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "X-Request-Id"],
            max_age=600,
        )
    # Outermost of our middlewares: /ws straight to its endpoint, past the HTTP-only layers
    # and the router (each held a coroutine frame per connection; ws_protocol.py).
    app.add_middleware(DirectWebSocket, path="/ws", endpoint=ws_endpoint)
    install_web(app, settings.web_dir)  # last: its catch-all never shadows a route above
    return app


# The multipart framing around an upload's file (boundaries, part headers, small fields).
MULTIPART_OVERHEAD = 64 * 1024


def _body_limit(settings: GatewaySettings, scope: MutableMapping[str, Any]) -> int:
    """Bytes a request body may have: uploads their file cap plus framing, JSON routes
    GATEWAY_MAX_REQUEST_BYTES."""
    if scope.get("path") == "/v1/media" and scope.get("method") == "POST":
        return settings.media_max_bytes + MULTIPART_OVERHEAD
    return settings.max_request_bytes
