"""``/openapi.json`` says what the server really does (app developers generate clients from it).

- **Problems.** Every refusal is an RFC 9457 body, ``application/problem+json``, whose
  ``status`` and ``title`` are the response's (``Problem`` plus one ``Problem<status>`` schema
  per status with both as constants). Routes declare their own refusals with
  ``responses=problems(403, 404, ...)``; :func:`complete` adds those that follow from the
  operation itself, so none can be forgotten: 401 where it has bearer security (every route
  taking a ``Caller``: ``api/deps.py``), 422 where it takes any input, 413 where it takes a
  body (``GATEWAY_MAX_REQUEST_BYTES``), 429 where the write budget applies
  (``limits.rest_kind``) and 503 everywhere (every route ends in an RPC or a service call,
  and a draining gateway refuses all).
- **Methods.** A method no operation of a known path takes is answered 405 with ``Allow``
  listing exactly the path's methods (Starlette would name only the first route's, and the
  web app's catch-all would answer a GET with 404).
- **Constraints** are declared on the models and parameters, also those only a handler or
  a service checks (``NONBLANK_TEXT`` ...). What JSON Schema cannot say (a cursor the server
  did not make, an unknown user, what a dm does not support, ``5.0`` for an integer) is a
  documented 422, and the repository's ``schemathesis.toml`` lists it for the tester.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from chat_common.app import status_problem
from chat_proto.errors import HTTP_STATUS, TITLES, ErrorCode
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from chat_gateway.limits import rest_kind

PROBLEM = "application/problem+json"
BEARER = "bearer"  # the security scheme of chat_gateway.api.deps (HTTPBearer)
# A signed URL (``u``, ``exp``, ``sig``) or the bearer token.
SECURITY_OR_SIGNED: list[dict[str, list[str]]] = [{BEARER: []}, {}]

_CODE_OF = {status: code for code, status in HTTP_STATUS.items()}
# (title, code) of statuses outside the catalogue (chat_common.app renders them alike)
_OTHER = {405: ("Method Not Allowed", ErrorCode.INVALID)}
_DESCRIPTIONS = {
    401: "No valid credentials: the bearer token is missing, malformed, expired or revoked.",
    403: "Not allowed for this caller.",
    404: "No such resource, or not visible to this caller.",
    409: "Conflicts with the current state.",
    413: "The request body, or a text in it, is too large.",
    415: "The content type is not accepted.",
    422: "Invalid input: a parameter or body the schema allows may still be refused (see the operation).",
    429: "Rate limited: retry after Retry-After seconds.",
    503: "Temporarily unavailable (a service is down, or this gateway is shutting down): retry later.",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 1},
}


def _title_code(status: int) -> tuple[str, str]:
    if status in _OTHER:
        title, code = _OTHER[status]
        return title, str(code)
    code = _CODE_OF[status]
    return TITLES[code], str(code)


def problem_ref(status: int) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/Problem{status}"}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description or _DESCRIPTIONS.get(status) or _title_code(status)[0],
        "content": {PROBLEM: {"schema": problem_ref(status)}},
    }
    if status == 429:
        out["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
    elif status == 503:
        out["headers"] = {"Retry-After": _RETRY_AFTER}
    return out


def problems(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: its own refusals (``problems(403, 404)``), optionally with
    a description each (``problems(409, d409="the username is taken")``)."""
    return {s: problem_response(s, described.get(f"d{s}")) for s in statuses}


def _schemas() -> dict[str, Any]:
    base = {
        "type": "object",
        "title": "Problem",
        "description": "RFC 9457 problem details. `status` and `title` are always the response's; "
        "`code` is the stable error code.",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string", "description": "always about:blank"},
            "title": {"type": "string", "description": "the status' reason phrase"},
            "status": {"type": "integer", "description": "the response's status"},
            "code": {"type": "string", "enum": [str(c) for c in ErrorCode]},
            "detail": {"type": "string", "description": "what was wrong, for people"},
            "instance": {"type": "string", "description": "the request's path"},
            "retry_after_ms": {"type": "integer", "description": "with 429 and some 503: when to retry"},
        },
    }
    out: dict[str, Any] = {"Problem": base}
    for status in sorted({*HTTP_STATUS.values(), *_OTHER}):
        title, code = _title_code(status)
        out[f"Problem{status}"] = {
            "title": f"Problem{status}",
            "allOf": [{"$ref": "#/components/schemas/Problem"}],
            "type": "object",
            "properties": {"status": {"const": status}, "title": {"const": title}, "code": {"const": code}},
        }
    return out


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds to FastAPI's document what follows from each operation (see the module doc)."""
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            responses: dict[str, Any] = op.setdefault("responses", {})

            def add(status: int, responses: dict[str, Any] = responses) -> None:
                responses.setdefault(str(status), problem_response(status))

            if op.get("security"):
                add(401)
            if (op.get("parameters") or op.get("requestBody")) and PROBLEM not in responses.get("422", {}).get(
                "content", {}
            ):
                responses["422"] = problem_response(422)  # instead of FastAPI's HTTPValidationError
            if op.get("requestBody"):
                add(413)
            if rest_kind(method.upper(), path) is not None:
                add(429)
            add(503)
            op["responses"] = dict(sorted(responses.items()))
    _whole_bounds(schema)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(_schemas())
    return schema


def _whole_bounds(node: Any) -> None:
    """The bounds of an integer as integers: FastAPI writes ``maximum: 5.0`` where pydantic
    said 5, and a tester then sends 5.0, which a strict integer field refuses."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = int(value)
        for value in node.values():
            _whole_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _whole_bounds(value)


DESCRIPTION = (
    "Errors are `application/problem+json` (RFC 9457) whose `status` and `title` equal the "
    "response's. A method a path does not take is answered 405 with `Allow`."
)


def install_openapi(app: FastAPI) -> None:
    """The completed document at ``/openapi.json`` and the 405 check (call after the
    routers are included, before the other middleware is added)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=DESCRIPTION,
                routes=app.routes,
            )
            app.openapi_schema = complete(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(MethodCheck, document=openapi)


def _path_regex(template: str) -> re.Pattern[str]:
    """A path of the document as the router matches it (``{name}``: one segment)."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class MethodCheck:
    """405 ``Allow: <the path's methods in the document>`` for any other method on a path
    of the document; anything else goes on to the routes."""

    def __init__(self, app: ASGIApp, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document
        self._index: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def _allowed(self, path: str) -> set[str]:
        if self._index is None:
            self._index = [
                (_path_regex(template), frozenset(m.upper() for m in item if m in _METHODS))
                for template, item in self.document().get("paths", {}).items()
            ]
        allowed: set[str] = set()
        for regex, methods in self._index:
            if regex.match(path):
                allowed |= methods
        return allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            allowed = self._allowed(path)
            if allowed and scope["method"] not in allowed:
                headers = {"Allow": ", ".join(sorted(allowed))}
                await status_problem(405, "Method Not Allowed", scope["path"], headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


# -- constraints the handlers enforce that pydantic does not check itself --------------------
def _ranges(chars: Sequence[int]) -> str:
    out: list[str] = []
    i = 0
    while i < len(chars):
        j = i
        while j + 1 < len(chars) and chars[j + 1] == chars[j] + 1:
            j += 1
        lo, hi = f"\\u{chars[i]:04x}", f"\\u{chars[j]:04x}"
        out.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "".join(out)


# What str.strip() and str.split() remove: Python's whitespace (all of it in the BMP).
_SPACE = [c for c in range(0x10000) if chr(c).isspace()]
# ``clean_body``: not empty once control characters are removed and the rest is trimmed
# (a pattern matches anywhere: "has at least one character outside this class").
NONBLANK_TEXT = f"[^{_ranges(sorted({*range(0x21), 0x7F, *_SPACE}))}]"
# presence ``user_ids``: at least one id between the commas once trimmed
NONBLANK_LIST = f"[^{_ranges(sorted({ord(','), *_SPACE}))}]"
