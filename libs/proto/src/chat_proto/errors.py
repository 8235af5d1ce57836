"""One error catalogue: stable codes, their HTTP statuses and WebSocket rendering."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID = "invalid"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.INVALID: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

TITLES: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHORIZED: "Unauthorized",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.NOT_FOUND: "Not Found",
    ErrorCode.CONFLICT: "Conflict",
    ErrorCode.TOO_LARGE: "Content Too Large",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "Unsupported Media Type",
    ErrorCode.INVALID: "Unprocessable Content",
    ErrorCode.RATE_LIMITED: "Too Many Requests",
    ErrorCode.UNAVAILABLE: "Service Unavailable",
    ErrorCode.INTERNAL: "Internal Server Error",
}


class ChatError(Exception):
    """The one exception type that crosses layers; rendered by transports."""

    def __init__(
        self,
        code: ErrorCode | str,
        message: str = "",
        *,
        retry_after_ms: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.code = ErrorCode(code)
        self.message = message or TITLES[self.code]
        self.retry_after_ms = retry_after_ms
        self.extra = extra or {}
        super().__init__(f"{self.code}: {self.message}")

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.retry_after_ms is not None:
            d["retry_after_ms"] = self.retry_after_ms
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChatError:
        try:
            code = ErrorCode(d.get("code", "internal"))
        except ValueError:
            code = ErrorCode.INTERNAL
        return cls(
            code,
            str(d.get("message", "")),
            retry_after_ms=d.get("retry_after_ms"),
            extra=d.get("extra") or None,
        )

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 problem details body."""
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": TITLES[self.code],
            "status": self.status,
            "code": str(self.code),
            "detail": self.message,
        }
        if instance:
            body["instance"] = instance
        if self.retry_after_ms is not None:
            body["retry_after_ms"] = self.retry_after_ms
        body.update(self.extra)
        return body
