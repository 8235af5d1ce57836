"""The browser's side of the gateway: the web app's static files, ``/docs``, origins.

**The web app** (``GATEWAY_WEB_DIR``: the static export of ``web/``, ``web/out``) is served
at ``/`` by a catch-all route registered after every API route, so it never shadows one
(``/v1/...`` that matched nothing stays a problem 404). A path maps to the file, to
``path.html`` or to ``path/index.html``; anything else is the export's ``404.html`` with 404.
Headers:

- HTML: a strict ``Content-Security-Policy`` per file — ``script-src 'self'`` plus the
  sha256 of each of *that file's* inline scripts (the App Router inlines its bootstrap data;
  the hashes are computed at build time by ``python -m chat_gateway.web prepare DIR`` into
  ``csp-hashes.json``, or at start when that file is missing), no ``unsafe-inline`` or
  ``unsafe-eval`` for scripts, no outside origin anywhere, ``frame-ancestors 'none'`` — plus
  ``X-Frame-Options: DENY``, ``Cache-Control: no-cache``;
- hashed assets under ``/_next/static/``: ``Cache-Control: public, max-age=31536000, immutable``;
- every file: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, and the
  precompressed ``.br`` / ``.gz`` sibling (made by ``prepare``) when the client accepts it
  (``Vary: Accept-Encoding``).

**Signed out at ``/``.** A request for ``/`` without the ``chat_hint`` cookie (set by the
app beside its session hint at login, cleared at logout: ``web/lib/session-hint.ts``; it
is not a credential, only "this browser may hold a session") is answered 307 to
``/login/`` when the export has that page: a signed-out visitor gets the pre-rendered login
form in the first response instead of a loading screen whose script then navigates there.

**/docs** is Swagger UI for ``/openapi.json`` from the ``swagger-ui-bundle`` package's files
(never a CDN), started by a small script file rather than an inline one, under the same
kind of CSP.

**Origins.** ``GATEWAY_ALLOWED_ORIGINS`` (comma-separated ``scheme://host[:port]``, or ``*``)
are the browser origins allowed to open ``/ws`` and to use the refresh-token cookie; the
gateway's own origin (the ``Host`` the request came to) always is. A request without
``Origin`` is not a browser's and is allowed (the cookie is never sent by such clients
unless they choose to). ``GATEWAY_CORS_ORIGINS`` are the origins that get CORS headers on
``/v1`` (none by default: same origin only).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import mimetypes
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from chat_proto.errors import ChatError, ErrorCode
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.datastructures import Headers

CSP_MANIFEST = "csp-hashes.json"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
IMMUTABLE = "public, max-age=31536000, immutable"
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
SESSION_HINT_COOKIE = "chat_hint"
SIGNED_OUT_START = "login/"
COMPRESSIBLE = {".html", ".js", ".css", ".json", ".txt", ".svg", ".map", ".xml", ".webmanifest"}


# -- origins --------------------------------------------------------------------------------
def _origin_of(value: str) -> str | None:
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_origins(value: str | Iterable[str]) -> list[str]:
    """``GATEWAY_ALLOWED_ORIGINS`` / ``GATEWAY_CORS_ORIGINS``: ``*`` or a list of origins;
    ValueError on anything else (a path, a bare host)."""
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    out: list[str] = []
    for item in items:
        if item == "*":
            out.append("*")
            continue
        origin = _origin_of(item)
        if origin is None or item.rstrip("/").lower() != origin:
            raise ValueError(f"not an origin (scheme://host[:port]): {item!r}")
        out.append(origin)
    return out


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request with this ``Origin`` header, sent to ``host``, may go on. No Origin:
    not a browser (allowed). The gateway's own origin is always allowed."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    parsed = _origin_of(origin)
    if parsed is None:
        return False
    if host and urlsplit(parsed).netloc == host.lower():
        return True
    return parsed in allowed


def require_origin(request: Request, allowed: Sequence[str]) -> None:
    """For calls that use the refresh cookie: the browser's Origin must be allowed (a missing
    Origin is refused too: browsers always send one on POST)."""
    origin = request.headers.get("origin")
    if origin is None or not origin_allowed(origin, request.headers.get("host"), allowed):
        raise ChatError(ErrorCode.FORBIDDEN, "this origin may not use the session cookie")


# -- the static export ---------------------------------------------------------------------
def inline_script_hashes(html: bytes) -> list[str]:
    """CSP source expressions (``'sha256-…'``) of the inline scripts of one HTML document."""
    out: list[str] = []
    for m in _INLINE_SCRIPT.finditer(html):
        digest = base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()
        if f"'sha256-{digest}'" not in out:
            out.append(f"'sha256-{digest}'")
    return out


def prepare(root: Path) -> dict[str, list[str]]:
    """Build step after ``next build``: the CSP hashes of every HTML file into
    ``csp-hashes.json``, and ``.gz`` (and ``.br`` when the ``brotli`` module is there)
    siblings of every compressible file. Returns the manifest."""
    manifest: dict[str, list[str]] = {}
    try:
        import brotli  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - an optional speed-up
        brotli = None
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.suffix in (".gz", ".br") or rel == CSP_MANIFEST:
            continue
        data = path.read_bytes()
        if path.suffix == ".html":
            manifest[rel] = inline_script_hashes(data)
        if path.suffix in COMPRESSIBLE and len(data) > 512:
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, 9, mtime=0))
            if brotli is not None:
                path.with_name(path.name + ".br").write_bytes(brotli.compress(data, quality=11))
    (root / CSP_MANIFEST).write_text(json.dumps(manifest, indent=0, sort_keys=True))
    return manifest


def csp(script_hashes: Sequence[str]) -> str:
    scripts = " ".join(["'self'", *script_hashes])
    return (
        "default-src 'self'; "
        f"script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; "
        "media-src 'self' blob:; "
        "font-src 'self'; "
        "connect-src 'self'; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


class WebApp:
    """The static export under ``root`` (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        manifest_file = self.root / CSP_MANIFEST
        if manifest_file.is_file():
            self.hashes: dict[str, list[str]] = json.loads(manifest_file.read_text())
        else:
            self.hashes = {
                p.relative_to(self.root).as_posix(): inline_script_hashes(p.read_bytes())
                for p in self.root.rglob("*.html")
            }

    def resolve(self, path: str) -> Path | None:
        path = path.strip("/")
        candidates = [path, f"{path}.html", f"{path}/index.html"] if path else ["index.html"]
        for c in candidates:
            if c.startswith(".") or "/." in c or c == CSP_MANIFEST or c.endswith((".gz", ".br")):
                continue
            f = (self.root / c).resolve()
            if f.is_file() and f.is_relative_to(self.root):
                return f
        return None

    def response(self, request: Request, path: str) -> Response:
        if not path.strip("/") and SESSION_HINT_COOKIE not in request.cookies and self.resolve(SIGNED_OUT_START):
            return RedirectResponse(
                "/" + SIGNED_OUT_START, 307, headers={"Cache-Control": "no-store", "Vary": "Cookie"}
            )
        f = self.resolve(path)
        status = 200
        if f is None:
            f = self.resolve("404")
            status = 404
            if f is None:
                return HTMLResponse("<!doctype html><title>Not found</title><h1>Not found</h1>", 404)
        rel = f.relative_to(self.root).as_posix()
        headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Vary": "Accept-Encoding"}
        if f.suffix == ".html":
            headers["Content-Security-Policy"] = csp(self.hashes.get(rel, []))
            headers["X-Frame-Options"] = "DENY"
            headers["Cache-Control"] = "no-cache"
        elif rel.startswith("_next/static/"):
            headers["Cache-Control"] = IMMUTABLE
        else:
            headers["Cache-Control"] = "public, max-age=300"
        media_type = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type in ("application/javascript", "application/json"):
            media_type += "; charset=utf-8"
        accepted = _accepted_encodings(request.headers)
        for encoding, suffix in _ENCODINGS:
            packed = f.with_name(f.name + suffix)
            if encoding in accepted and packed.is_file():
                headers["Content-Encoding"] = encoding
                return FileResponse(packed, status_code=status, headers=headers, media_type=media_type)
        return FileResponse(f, status_code=status, headers=headers, media_type=media_type)


def _accepted_encodings(headers: Headers) -> set[str]:
    out = set()
    for part in headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name and "q=0" not in params.replace(" ", "").replace("q=0.", "q=x"):
            out.add(name.strip().lower())
    return out


# -- /docs ----------------------------------------------------------------------------------
_DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""
_DOCS_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
"""
_DOCS_ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js"}


def _swagger_dir() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - a dependency of the gateway
        return None
    return Path(swagger_ui_path)


def install_web(app: FastAPI, web_dir: str) -> None:
    """``/docs`` and, when ``web_dir`` is set, the web app at ``/`` (call after every router)."""
    swagger = _swagger_dir()
    docs_headers = {
        "Content-Security-Policy": csp([]).replace("img-src 'self' data: blob:", "img-src 'self' data:"),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return HTMLResponse(_DOCS_HTML, headers=docs_headers)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
        if name == "init.js":
            return Response(_DOCS_INIT, media_type="application/javascript; charset=utf-8", headers=headers)
        if name not in _DOCS_ASSETS or swagger is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such file")
        return FileResponse(swagger / name, headers=headers)

    web = WebApp(Path(web_dir)) if web_dir else None

    @app.get("/{path:path}", include_in_schema=False)
    async def static(path: str, request: Request) -> Response:
        if web is None or path == "v1" or path.startswith(("v1/", "ws")):
            raise ChatError(ErrorCode.NOT_FOUND, "no such route")
        return web.response(request, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "prepare":
        print("usage: python -m chat_gateway.web prepare DIR", file=sys.stderr)
        return 2
    root = Path(args[1])
    if not (root / "index.html").is_file():
        print(f"{root}: no index.html (build the web app first)", file=sys.stderr)
        return 1
    manifest = prepare(root)
    print(f"{root}: {len(manifest)} HTML files hashed, assets compressed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
