"""The service skeleton: health, readiness, metrics and problem+json error rendering."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from chat_proto.errors import ChatError, ErrorCode
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from chat_common.db import database_unavailable

log = logging.getLogger("chat.app")

RPC_REQUESTS = Counter("chat_rpc_requests_total", "RPC requests handled", ["subject", "outcome"])
RPC_LATENCY = Histogram(
    "chat_rpc_duration_seconds",
    "RPC handling time",
    ["subject"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def observe_rpc(subject: str, outcome: str, seconds: float) -> None:
    RPC_REQUESTS.labels(subject, outcome).inc()
    RPC_LATENCY.labels(subject).observe(seconds)


ReadyCheck = Callable[[Request], Awaitable[dict[str, bool]]]

PROBLEM = "application/problem+json"


def problem_response(err: ChatError, request: Request | None = None) -> JSONResponse:
    headers = {}
    if err.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, -(-err.retry_after_ms // 1000)))
    instance = request.url.path if request is not None else None
    return JSONResponse(err.problem(instance), status_code=err.status, media_type=PROBLEM, headers=headers)


def status_problem(
    status: int, detail: str, instance: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem body for a status outside the error catalogue (405 and the like): its
    title the status' reason phrase, code ``invalid`` (4xx) or ``internal``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "code": "invalid" if 400 <= status < 500 else "internal",
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def unexpected_error(exc: Exception) -> ChatError | None:
    """What an exception no handler expected answers when it is not a bug: a database that
    is away or restarting is 503 ``unavailable`` (try again), not 500. None: ``internal``."""
    if database_unavailable(exc):
        return ChatError(ErrorCode.UNAVAILABLE, "database unavailable, try again")
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def chat_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChatError)
        return problem_response(exc, request)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for e in exc.errors()[:3]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {e.get('msg')}")
        return problem_response(ChatError(ErrorCode.INVALID, "; ".join(parts)), request)

    async def http_error(request: Request, exc: Exception) -> Response:
        """Starlette's and FastAPI's own refusals, as problem bodies whose ``status`` and
        ``title`` are the response's. FastAPI's 400 for a body it cannot parse at all
        (invalid UTF-8, nesting too deep) is malformed JSON: 422 ``invalid``."""
        assert isinstance(exc, StarletteHTTPException)
        status = 422 if exc.status_code == 400 else exc.status_code
        code = {
            401: ErrorCode.UNAUTHORIZED,
            403: ErrorCode.FORBIDDEN,
            404: ErrorCode.NOT_FOUND,
            409: ErrorCode.CONFLICT,
            413: ErrorCode.TOO_LARGE,
            415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            422: ErrorCode.INVALID,
            429: ErrorCode.RATE_LIMITED,
            503: ErrorCode.UNAVAILABLE,
        }.get(status)
        if code is not None:
            return problem_response(ChatError(code, str(exc.detail)), request)
        # 405 and the like: no code of the catalogue, the status as it is (with Allow)
        return status_problem(status, str(exc.detail), request.url.path, dict(exc.headers or {}))

    async def unhandled(request: Request, exc: Exception) -> Response:
        mapped = unexpected_error(exc)
        if mapped is not None:
            log.warning(mapped.message, extra={"path": request.url.path, "error": str(exc)})
            return problem_response(mapped, request)
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(ChatError(ErrorCode.INTERNAL), request)

    app.add_exception_handler(ChatError, chat_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unhandled)


def install_ops_routes(app: FastAPI, ready: ReadyCheck, metrics: bool = True) -> None:
    """``/healthz``, ``/readyz`` and (unless ``metrics`` is False: a public port) ``/metrics``."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        checks = await ready(request)
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    if not metrics:
        return

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
