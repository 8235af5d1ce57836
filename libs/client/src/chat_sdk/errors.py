"""Typed errors mirroring the server's stable ``code`` (PROTOCOL: Errors).

Every error the SDK raises is a :class:`ChatError`; catch a subclass for one code::

    try:
        await client.send(conv, "hi")
    except chat_sdk.Forbidden:
        ...
"""

from __future__ import annotations

from typing import Any

from chat_proto.errors import HTTP_STATUS, ErrorCode


class ChatError(Exception):
    """Base of every SDK error. ``code`` is the server's stable code (or an SDK one)."""

    code = ErrorCode.INTERNAL.value

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.code
        self.status = status
        #: seconds the server asked to wait (``rate_limited``), else None
        self.retry_after = retry_after
        #: the problem+json body or WebSocket error frame, as received
        self.body = dict(body or {})
        super().__init__(f"{self.code}: {self.message}")


class Unauthorized(ChatError):
    """401 / close 4001: bad credentials, or the session is over (refresh refused)."""

    code = ErrorCode.UNAUTHORIZED.value


class Forbidden(ChatError):
    code = ErrorCode.FORBIDDEN.value


class NotFound(ChatError):
    code = ErrorCode.NOT_FOUND.value


class Conflict(ChatError):
    code = ErrorCode.CONFLICT.value


class TooLarge(ChatError):
    code = ErrorCode.TOO_LARGE.value


class UnsupportedMediaType(ChatError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE.value


class Invalid(ChatError):
    code = ErrorCode.INVALID.value


class RateLimited(ChatError):
    """429 / ``rate_limited``; ``retry_after`` says how long to wait (seconds)."""

    code = ErrorCode.RATE_LIMITED.value


class Unavailable(ChatError):
    """503 / ``unavailable``, or the gateway could not be reached."""

    code = ErrorCode.UNAVAILABLE.value


class InternalError(ChatError):
    code = ErrorCode.INTERNAL.value


class SendTimeout(Unavailable):
    """``send()`` was not acknowledged before its deadline. The message may still have been
    stored: retrying with the same ``client_msg_id`` is safe and returns its seq."""

    def __init__(self, message: str, *, client_msg_id: str) -> None:
        super().__init__(message)
        self.client_msg_id = client_msg_id


class ClientClosed(ChatError):
    """The client was closed by the application."""

    code = "closed"


ERRORS: dict[str, type[ChatError]] = {
    cls.code: cls
    for cls in (
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        TooLarge,
        UnsupportedMediaType,
        Invalid,
        RateLimited,
        Unavailable,
        InternalError,
    )
}
# The server's catalogue (chat_proto.errors): the status each code is answered with.
STATUS_CODES: dict[int, str] = {status: code.value for code, status in HTTP_STATUS.items() if status != 500}


def error_from_code(
    code: str | None,
    message: str = "",
    *,
    status: int | None = None,
    retry_after: float | None = None,
    body: dict[str, Any] | None = None,
) -> ChatError:
    """The typed error for a server ``code`` (unknown codes → :class:`ChatError` base with
    that code, so newer servers' codes still surface)."""
    if code is None and status is not None:
        code = STATUS_CODES.get(status, "internal")
    cls = ERRORS.get(code or "internal")
    if cls is None:
        err = ChatError(message or str(code), status=status, retry_after=retry_after, body=body)
        err.code = str(code)
        return err
    return cls(message, status=status, retry_after=retry_after, body=body)


def error_from_frame(frame: dict[str, Any]) -> ChatError:
    """A WebSocket ``error`` frame as a typed error."""
    ms = frame.get("retry_after_ms")
    retry = float(ms) / 1000 if isinstance(ms, int | float) else None
    return error_from_code(frame.get("code"), str(frame.get("message") or ""), retry_after=retry, body=frame)
