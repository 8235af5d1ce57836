"""The gateway's side of the media service's internal HTTP routes (``chat_media.http``):
uploads streamed from the spooled multipart part, downloads streamed back. Errors come back
as the media service's problem+json and are raised as the same ``ChatError``."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
from chat_proto.errors import ChatError, ErrorCode
from starlette.datastructures import UploadFile

USER_HEADER = "Chat-User"
NAME_HEADER = "Chat-File-Name"
CHUNK = 256 * 1024


class MediaClient:
    def __init__(self, base_url: str, token: str, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self.http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout_s, limits=limits)

    async def close(self) -> None:
        await self.http.aclose()

    async def upload(self, user: str, name: str | None, file: UploadFile) -> dict[str, Any]:
        async def body() -> AsyncIterator[bytes]:
            await file.seek(0)
            while chunk := await file.read(CHUNK):
                yield chunk

        headers = {USER_HEADER: user, NAME_HEADER: urllib.parse.quote(name or "")}
        try:
            r = await self.http.post("/internal/media", content=body(), headers=headers)
        except httpx.HTTPError as exc:
            raise ChatError(ErrorCode.UNAVAILABLE, "media service unavailable, try again") from exc
        if r.status_code != 201:
            raise _error(r)
        out: dict[str, Any] = r.json()
        return out

    async def open(self, user: str, media_id: str, thumbnail: bool) -> httpx.Response:
        """The media service's streaming response (200); the caller closes it."""
        path = f"/internal/media/{media_id}" + ("/thumbnail" if thumbnail else "")
        try:
            r = await self.http.send(self.http.build_request("GET", path, headers={USER_HEADER: user}), stream=True)
        except httpx.HTTPError as exc:
            raise ChatError(ErrorCode.UNAVAILABLE, "media service unavailable, try again") from exc
        if r.status_code != 200:
            await r.aread()
            await r.aclose()
            raise _error(r)
        return r


def _error(r: httpx.Response) -> ChatError:
    try:
        body = r.json()
        code, detail = ErrorCode(body.get("code")), str(body.get("detail") or "")
        retry = body.get("retry_after_ms")
    except (ValueError, AttributeError):
        return ChatError(ErrorCode.UNAVAILABLE, f"media service answered {r.status_code}")
    if code == ErrorCode.UNAUTHORIZED:  # the gateway's own credential: not the client's fault
        return ChatError(ErrorCode.UNAVAILABLE, "media service refused this gateway")
    return ChatError(code, detail, retry_after_ms=retry if isinstance(retry, int) else None)
