"""The media service's internal HTTP routes, for gateways only (bytes do not fit NATS
messages: the default maximum is 1 MB). The gateway authenticates the user and passes the
user's id; it proves itself with ``MEDIA_INTERNAL_TOKEN``.

- ``POST /internal/media``: the raw file bytes as the body (streamed; refused with 413 as
  soon as more than ``MEDIA_MAX_BYTES`` arrived), ``Chat-User``, ``Chat-File-Name``
  (percent-encoded). 201 with the upload (``service.view``).
- ``GET /internal/media/{id}`` and ``…/thumbnail``: the bytes, streamed, with the sanitized
  type, ``Content-Length`` and ``Chat-File-Name``; 404 for whoever may not see it.
"""

from __future__ import annotations

import hmac
import urllib.parse
from collections.abc import Callable

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.media_api import MEDIA_ID
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse

from chat_media.service import MediaService
from chat_media.settings import MediaSettings

USER_HEADER = "Chat-User"
NAME_HEADER = "Chat-File-Name"


def router(settings: MediaSettings, service: Callable[[], MediaService]) -> APIRouter:
    token = settings.internal_token.get_secret_value()

    def gateway_only(authorization: str = Header(default="")) -> None:
        if token and not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise ChatError(ErrorCode.UNAUTHORIZED, "not a gateway")

    def user_of(request: Request) -> str:
        user = request.headers.get(USER_HEADER, "")
        if not user or len(user) > 64:
            raise ChatError(ErrorCode.UNAUTHORIZED, "no user")
        return user

    r = APIRouter(prefix="/internal/media", dependencies=[Depends(gateway_only)], include_in_schema=False)

    @r.post("")
    async def upload(request: Request) -> JSONResponse:
        user = user_of(request)
        name = urllib.parse.unquote(request.headers.get(NAME_HEADER, ""))[:1000] or None
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > settings.max_bytes:
                raise ChatError(ErrorCode.TOO_LARGE, f"the file is larger than {settings.max_bytes} bytes")
        out = await service().upload(user, name, bytes(data))
        return JSONResponse(out, status_code=201)

    async def download(request: Request, media_id: str, thumbnail: bool) -> StreamingResponse:
        d = await service().open(user_of(request), media_id, thumbnail=thumbnail)
        headers = {"Content-Length": str(d.size), NAME_HEADER: urllib.parse.quote(d.name)}
        return StreamingResponse(d.chunks, media_type=d.mime, headers=headers)

    @r.get("/{media_id}")
    async def get(request: Request, media_id: str = Path(pattern=MEDIA_ID)) -> StreamingResponse:
        return await download(request, media_id, False)

    @r.get("/{media_id}/thumbnail")
    async def thumb(request: Request, media_id: str = Path(pattern=MEDIA_ID)) -> StreamingResponse:
        return await download(request, media_id, True)

    return r
