"""REST media (PROTOCOL §5): ``POST /v1/media`` (multipart ``file``) and
``GET /v1/media/{id}`` / ``…/thumbnail`` with a bearer token or a signed URL (media_urls.py).

The body is bounded while it is read (body_limit.py: ``GATEWAY_MEDIA_MAX_BYTES`` plus the
multipart framing) and the file part is spooled to disk beyond 1 MiB, then streamed to the
media service, which types it by its bytes, sanitizes and stores it. Downloads stream back
with the sanitized type and headers that keep a browser from treating them as anything else.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

from chat_proto.errors import ChatError, ErrorCode
from chat_proto.media_api import MEDIA_ID
from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from chat_gateway.api.deps import Caller, Res, principal
from chat_gateway.media_client import NAME_HEADER, MediaClient
from chat_gateway.openapi import SECURITY_OR_SIGNED, problems

router = APIRouter(prefix="/v1")
MediaIdPath = Annotated[str, Path(pattern=MEDIA_ID)]
# Whatever the sanitized type, a fetched object is never a document that runs anything.
CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"


def _media(res: Res) -> MediaClient:
    if res.media is None:
        raise ChatError(ErrorCode.UNAVAILABLE, "media is not enabled on this server")
    return res.media


# What the media service stores (its sanitizer's types) and serves back.
_BYTES = {"schema": {"type": "string", "format": "binary"}}
STORED_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain")
THUMBNAIL_TYPES = ("image/jpeg", "image/png")


def _download_doc(types: tuple[str, ...], what: str) -> dict[str, Any]:
    return {
        "response_class": Response,
        "openapi_extra": {"security": SECURITY_OR_SIGNED},
        "responses": {
            200: {"description": what, "content": dict.fromkeys(types, _BYTES)},
            **problems(401, 404, d401="no bearer token and no valid signed link (u, exp, sig)"),
        },
    }


@router.post(
    "/media",
    status_code=201,
    responses={
        201: {"description": "Stored: the media object with its signed url (and thumbnail_url)"},
        **problems(
            413,
            415,
            d413="the file is larger than the server's limit, or the upload quota is used up",
            d415="the file's type (decided by its bytes) is not accepted",
        ),
    },
)
async def upload(
    caller: Caller,
    res: Res,
    file: Annotated[
        UploadFile,
        File(
            description="the file (not empty); its type is decided by its bytes",
            json_schema_extra={"format": "binary", "minLength": 1},
        ),
    ],
) -> JSONResponse:
    media = _media(res)
    if (file.size or 0) > res.settings.media_max_bytes:
        raise ChatError(ErrorCode.TOO_LARGE, f"the file is larger than {res.settings.media_max_bytes} bytes")
    if not file.size:
        raise ChatError(ErrorCode.INVALID, "file: empty")
    out = await media.upload(caller.user_id, file.filename, file)
    return JSONResponse(_signed(res, out, caller.user_id), status_code=201)


def _signed(res: Res, out: dict[str, Any], user: str) -> dict[str, Any]:
    has_thumb = bool(out.pop("thumbnail", False))
    out["url"] = res.signer.url(out["media_id"], user)
    if has_thumb:
        out["thumbnail_url"] = res.signer.url(out["media_id"], user, thumbnail=True)
    return out


async def _reader(request: Request, res: Res, media_id: str, thumbnail: bool) -> str:
    """The user a fetch is for: a signed URL's (``u``, ``exp``, ``sig``), else the bearer's."""
    q = request.query_params
    if "sig" in q:
        user, exp, sig = q.get("u", ""), q.get("exp", ""), q.get("sig", "")
        if not (
            user and exp.isdigit() and len(exp) < 12 and res.signer.verify(media_id, user, int(exp), sig, thumbnail)
        ):
            raise ChatError(ErrorCode.UNAUTHORIZED, "invalid or expired media link")
        return user
    return (await principal(request, res)).user_id


async def _download(request: Request, res: Res, media_id: str, thumbnail: bool) -> StreamingResponse:
    media = _media(res)
    user = await _reader(request, res, media_id, thumbnail)
    upstream = await media.open(user, media_id, thumbnail)
    mime = upstream.headers.get("content-type", "application/octet-stream")
    name = urllib.parse.unquote(upstream.headers.get(NAME_HEADER, "")) or "file"
    inline = mime.startswith("image/") or mime.startswith("video/")
    headers = {
        "Content-Length": upstream.headers.get("content-length", ""),
        "Content-Disposition": f"{'inline' if inline else 'attachment'}; {_filename(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "private, max-age=300",
        "Referrer-Policy": "no-referrer",
    }
    if not headers["Content-Length"]:
        del headers["Content-Length"]

    async def body() -> Any:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(body(), media_type=mime, headers=headers)


def _filename(name: str) -> str:
    """``filename`` (ASCII fallback) and RFC 5987 ``filename*`` (UTF-8)."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name) or "file"
    return f"filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


@router.get("/media/{media_id}", **_download_doc(STORED_TYPES, "The file, with its sanitized type"))
async def download(
    request: Request,
    res: Res,
    media_id: MediaIdPath,
    u: Annotated[str | None, Query(max_length=64)] = None,
    exp: Annotated[int | None, Query(ge=0, le=10**11)] = None,
    sig: Annotated[str | None, Query(max_length=100)] = None,
) -> StreamingResponse:
    return await _download(request, res, media_id, thumbnail=False)


@router.get("/media/{media_id}/thumbnail", **_download_doc(THUMBNAIL_TYPES, "The thumbnail"))
async def thumbnail(
    request: Request,
    res: Res,
    media_id: MediaIdPath,
    u: Annotated[str | None, Query(max_length=64)] = None,
    exp: Annotated[int | None, Query(ge=0, le=10**11)] = None,
    sig: Annotated[str | None, Query(max_length=100)] = None,
) -> StreamingResponse:
    return await _download(request, res, media_id, thumbnail=True)
