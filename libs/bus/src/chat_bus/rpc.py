"""Request/reply over core NATS: one envelope, one client, one server helper.

Request: JSON body (a pydantic model of the service's API module); the acting
user, already authenticated by the gateway, travels in the ``Chat-User`` header.
Reply: ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {code, message, ...}}``.

Every request carries its caller's deadline (``Chat-Deadline``, epoch seconds): a server
drops a request whose caller has already given up instead of doing the work, and the
handler can see the deadline (``current_deadline``) to skip queued work that outlived it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import orjson
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.logctx import bind, bound
from chat_proto.ops import Op, Req, Resp
from chat_proto.replies import Reply
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError

USER_HEADER = "Chat-User"
REQUEST_ID_HEADER = "Chat-Request-Id"
DEADLINE_HEADER = "Chat-Deadline"

# The deadline of the request being handled (epoch seconds), for work queued inside it.
current_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("rpc_deadline", default=None)


def expired() -> bool:
    """True when the caller of the request being handled has given up."""
    deadline = current_deadline.get()
    return deadline is not None and time.time() > deadline


log = logging.getLogger("chat.rpc")

M = TypeVar("M", bound=BaseModel)


class RpcContext:
    __slots__ = ("request_id", "subject", "user")

    def __init__(self, subject: str, user: str | None, request_id: str | None) -> None:
        self.subject = subject
        self.user = user
        self.request_id = request_id

    def require_user(self) -> str:
        if not self.user:
            raise ChatError(ErrorCode.UNAUTHORIZED, "no authenticated user")
        return self.user


Handler = Callable[[Any, RpcContext], Awaitable[Any]]


def _dump(result: Any) -> Any:
    if isinstance(result, Reply):  # a reply read from elsewhere: as it was
        return result.wire()
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json", exclude_none=True)
    return result


class RpcServer:
    """Serves ``<prefix>.<op>`` subjects in a queue group; each op has a request model."""

    def __init__(
        self,
        nc: NATS,
        queue: str,
        on_request: Callable[[str, str, float], None] | None = None,
        errors: Callable[[Exception], ChatError | None] | None = None,
    ) -> None:
        """``errors`` maps an unexpected exception of a handler to the error to answer
        (e.g. a database that is restarting → ``unavailable``); None → ``internal``."""
        self._nc = nc
        self._errors = errors
        self._queue = queue
        self._handlers: dict[str, tuple[type[BaseModel], Handler]] = {}
        self._subs: list[Subscription] = []
        self._on_request = on_request
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return len(self._tasks)

    def add(self, subject: str, model: type[BaseModel], handler: Handler) -> None:
        self._handlers[subject] = (model, handler)

    def route(self, op: Op[Req, Resp], handler: Callable[[Req, RpcContext], Awaitable[Resp | dict[str, Any]]]) -> None:
        """Serve ``op`` (chat_proto.ops): requests arrive validated as ``op.request``; the
        handler answers ``op.reply`` (a model, or the same members as a dict)."""
        self.add(op.subject, op.request, handler)

    async def start(self) -> None:
        for subject in self._handlers:
            self._subs.append(await self._nc.subscribe(subject, queue=self._queue, cb=self._dispatch))
        # the server has the subscriptions before the service says it is ready
        await self._nc.flush()

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _dispatch(self, msg: Msg) -> None:
        # Handle concurrently: one slow request must not hold up the subscription.
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        started = time.perf_counter()
        model, handler = self._handlers[msg.subject]
        headers = msg.headers or {}
        ctx = RpcContext(msg.subject, headers.get(USER_HEADER), headers.get(REQUEST_ID_HEADER))
        bind(rpc=msg.subject, user=ctx.user, request=ctx.request_id)  # on this task's log lines
        current_deadline.set(_deadline(headers.get(DEADLINE_HEADER)))
        if expired():  # the caller gave up waiting: nobody reads the answer
            if self._on_request:
                self._on_request(msg.subject, "expired", time.perf_counter() - started)
            return
        outcome = "ok"
        try:
            try:
                req = model.model_validate_json(msg.data or b"{}")
            except ValidationError as exc:
                raise ChatError(ErrorCode.INVALID, _describe(exc)) from exc
            result = await handler(req, ctx)
            reply: dict[str, Any] = {"ok": True, "result": _dump(result)}
        except ChatError as err:
            outcome = str(err.code)
            reply = {"ok": False, "error": err.to_dict()}
        except Exception as exc:
            mapped = self._errors(exc) if self._errors is not None else None
            if mapped is not None:
                outcome = str(mapped.code)
                log.warning("rpc handler failed: %s", mapped.message, extra={"subject": msg.subject, "error": str(exc)})
                reply = {"ok": False, "error": mapped.to_dict()}
            else:
                outcome = "internal"
                log.exception("rpc handler failed", extra={"subject": msg.subject})
                reply = {"ok": False, "error": ChatError(ErrorCode.INTERNAL).to_dict()}
        if msg.reply:
            try:
                await msg.respond(orjson.dumps(reply))
            except Exception:
                log.warning("rpc reply failed", extra={"subject": msg.subject})
        if self._on_request:
            self._on_request(msg.subject, outcome, time.perf_counter() - started)


def _deadline(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class RpcClient:
    def __init__(self, nc: NATS, default_timeout: float = 5.0) -> None:
        self._nc = nc
        self._timeout = default_timeout

    async def call(
        self,
        subject: str,
        payload: BaseModel | dict[str, Any] | None = None,
        *,
        user: str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        if isinstance(payload, BaseModel):
            data = payload.model_dump_json(exclude_none=True).encode()
        else:
            data = orjson.dumps(payload or {})
        timeout = timeout or self._timeout
        headers = {DEADLINE_HEADER: f"{time.time() + timeout:.3f}"}
        if user:
            headers[USER_HEADER] = user
        request_id = request_id or bound().get("request")  # the caller's own, passed along
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        try:
            msg = await self._nc.request(subject, data, timeout=timeout, headers=headers)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            raise ChatError(ErrorCode.UNAVAILABLE, "service unavailable, try again") from exc
        except nats.errors.ConnectionClosedError as exc:
            raise ChatError(ErrorCode.UNAVAILABLE, "bus unavailable") from exc
        reply = orjson.loads(msg.data)
        if reply.get("ok"):
            return reply.get("result")
        raise ChatError.from_dict(reply.get("error") or {})

    async def call_model(self, subject: str, payload: Any, model: type[M], **kw: Any) -> M:
        return model.model_validate(await self.call(subject, payload, **kw))

    async def request(
        self, op: Op[Req, Resp], req: Req | None = None, *, user: str | None = None, timeout: float | None = None
    ) -> Resp:
        """Call ``op`` (chat_proto.ops) and read its typed reply; errors raise ``ChatError``."""
        payload = req if req is not None else op.request()
        return op.read(await self.call(op.subject, payload, user=user, timeout=timeout))

    async def request_wire(
        self, op: Op[Req, Resp], req: Req | None = None, *, user: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Call ``op`` and return its reply as the owning service sent it, not read into the
        reply model: for a reply passed on to a client as it is (a page of history; reading
        and dumping 50 events again was ~7 % of the gateway's CPU per page)."""
        payload = req if req is not None else op.request()
        out = await self.call(op.subject, payload, user=user, timeout=timeout)
        if not isinstance(out, dict):
            raise ChatError(ErrorCode.INTERNAL, f"{op.subject}: malformed reply")
        return out
