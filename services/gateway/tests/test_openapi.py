"""The gateway's /openapi.json (chat_gateway.openapi): problem responses on every operation,
bearer security, 405 with the path's methods, and the declared patterns equal to the rules
the handlers apply. (The whole contract is checked by Schemathesis against a real cluster:
tests/integration/test_openapi_contract.py.)"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from chat_gateway.main import create_app
from chat_gateway.openapi import NONBLANK_LIST, NONBLANK_TEXT, PROBLEM
from chat_proto.errors import HTTP_STATUS, TITLES, ChatError, ErrorCode
from chat_proto.messages_api import clean_body
from fastapi import FastAPI


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app()  # never started: no lifespan, no NATS


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in document["paths"].items() for m, op in item.items()]


def test_every_refusal_is_a_documented_problem(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    for method, path, op in operations(document):
        responses = op["responses"]
        assert "503" in responses, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in responses, (method, path)
        if method != "GET" and not path.startswith("/v1/auth/"):
            assert "429" in responses, (method, path)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            ref = response["content"][PROBLEM]["schema"]["$ref"]
            assert ref == f"#/components/schemas/Problem{status}"
            consts = schemas[f"Problem{status}"]["properties"]
            assert consts["status"] == {"const": int(status)}
            code = ErrorCode(consts["code"]["const"])
            if status == "405":  # outside the catalogue: chat_common.app.status_problem
                assert (code, consts["title"]["const"]) == (ErrorCode.INVALID, "Method Not Allowed")
            else:  # what ChatError.problem() sends
                assert (HTTP_STATUS[code], consts["title"]["const"]) == (int(status), TITLES[code])


def test_bearer_security_and_401(document: dict[str, Any]) -> None:
    public = {"/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/jwks"}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path, op in operations(document):
        if path in public:
            assert "security" not in op, (method, path)
            continue
        assert {"bearer": []} in op["security"], (method, path)
        assert "401" in op["responses"], (method, path)
    media = document["paths"]["/v1/media/{media_id}"]["get"]
    assert media["security"] == [{"bearer": []}, {}]  # or a signed URL
    assert "image/png" in media["responses"]["200"]["content"]


def test_integer_bounds_are_integers(document: dict[str, Any]) -> None:
    reply_to = document["components"]["schemas"]["SendBody"]["properties"]["reply_to"]["anyOf"][0]
    assert reply_to == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert all(type(v) is int for v in reply_to.values() if not isinstance(v, str))


async def test_405_lists_every_method_of_the_path(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        for method, path, allow in [
            ("OPTIONS", "/v1/me/blocks", "GET, POST"),  # two routers' routes of one path
            ("DELETE", "/v1/conversations/abc", "GET, PATCH"),
            ("GET", "/v1/auth/logout", "POST"),  # not the web app's catch-all 404
            ("PUT", "/v1/media/abc/thumbnail", "GET"),
        ]:
            r = await http.request(method, path)
            assert r.status_code == 405, (method, path, r.text)
            assert r.headers["allow"] == allow
            assert r.headers["content-type"] == PROBLEM
            assert r.json() | {"detail": ""} == {
                "type": "about:blank",
                "title": "Method Not Allowed",
                "status": 405,
                "code": "invalid",
                "detail": "",
                "instance": path,
            }
        assert (await http.get("/v1/nosuchroute")).status_code == 404


def _accepted_body(text: str) -> bool:
    try:
        clean_body(text)
    except ChatError:
        return False
    return True


def test_declared_patterns_equal_the_handlers_rules() -> None:
    for c in [*range(0xD800), *range(0xE000, 0x10000), 0x1F600]:
        ch = chr(c)
        for text in (ch, f" {ch}\x01\t", ch * 2):
            assert bool(re.search(NONBLANK_TEXT, text)) == _accepted_body(text), hex(c)
            ids = [p.strip() for p in f"{text},{text}".split(",") if p.strip()]
            assert bool(re.search(NONBLANK_LIST, f"{text},{text}")) == bool(ids), hex(c)
