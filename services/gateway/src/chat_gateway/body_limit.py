"""Request bodies bounded by what is read, not by what is claimed (pure ASGI middleware).

A declared ``Content-Length`` over the limit (or not a number) is refused before anything
is read. Otherwise every chunk the route reads is counted as it arrives — a chunked body
has no length to check up front — and once the count passes the limit the route gets no
more of it: it sees the client as gone, and whatever it answers is replaced by
``413 too_large``. At most the limit plus one chunk is ever held in memory; the rest of
the body is discarded by the server as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from chat_common.app import problem_response
from chat_proto.errors import ChatError, ErrorCode
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = "request body too large"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int | None]) -> None:
        """``limit_for(scope)``: the byte limit of that request's route, None for none."""
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(scope, receive, send)
            return
        read = 0
        over = False
        answered = False

        async def counted() -> Message:
            nonlocal read, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if over:  # the route's own answer (a 400 or 422 about the cut body) is replaced
                if not answered:
                    answered = True
                    await _refuse(scope, receive, send)
                return
            await send(message)

        await self.app(scope, counted, guarded)
        if over and not answered:  # the route ended without answering
            await _refuse(scope, receive, send)


def _content_length(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return str(value.decode("latin-1"))
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    # The connection stays open: once the answer is complete the server discards the rest
    # of the body as it arrives (nothing is buffered), and the client reads the 413 instead
    # of a reset, which closing under its unread upload would cause.
    await problem_response(ChatError(ErrorCode.TOO_LARGE, TOO_LARGE), Request(scope))(scope, receive, send)
