"""The request-body limit counts what is read: chunked bodies are cut off at the limit and
answered 413, whatever the route would have answered; a declared length over the limit is
refused before anything is read."""

from __future__ import annotations

from typing import Any

import orjson
from chat_common.app import install_error_handlers
from chat_gateway.body_limit import BodyLimit
from fastapi import FastAPI
from pydantic import BaseModel

LIMIT = 1000


class Body(BaseModel):
    text: str


def app() -> Any:
    api = FastAPI()
    install_error_handlers(api)

    @api.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"len": len(body.text)}

    return BodyLimit(api, limit_for=lambda scope: LIMIT)


async def call(body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any], int]:
    """Drive the ASGI app; returns (status, JSON body, how many chunks it read)."""
    sent: list[dict[str, Any]] = []
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < len(body_chunks):
            read += 1
            return {"type": "http.request", "body": body_chunks[read - 1], "more_body": read < len(body_chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await app()(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], orjson.loads(body), read


async def test_chunked_body_is_cut_off_at_the_limit() -> None:
    chunks = [b'{"text": "'] + [b"x" * 100] * 10_000 + [b'"}']  # ~1 MB, no Content-Length
    status, body, read = await call(chunks, [(b"transfer-encoding", b"chunked")])
    assert (status, body["code"], body["status"]) == (413, "too_large", 413)
    assert read <= LIMIT // 100 + 2  # stopped reading right after the limit


async def test_declared_length_over_the_limit_is_refused_unread() -> None:
    status, body, read = await call([b"{}"], [(b"content-length", str(LIMIT + 1).encode())])
    assert (status, body["code"], read) == (413, "too_large", 0)
    status, body, read = await call([b"{}"], [(b"content-length", b"12abc")])
    assert (status, body["code"], read) == (413, "too_large", 0)


async def test_bodies_within_the_limit_pass() -> None:
    text = "y" * (LIMIT - 20)
    payload = orjson.dumps({"text": text})
    status, body, _ = await call([payload[:50], payload[50:]], [(b"transfer-encoding", b"chunked")])
    assert (status, body) == (200, {"len": len(text)})
    status, body, _ = await call([b'{"text": 5}'], [(b"content-length", b"11")])
    assert (status, body["code"]) == (422, "invalid")
