"""The browser's side of the gateway (chat_gateway.web): the static export with a per-file CSP
made of its inline scripts' hashes, precompressed assets, immutable hashed assets, /docs from
local files, and the origin rules."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from pathlib import Path

import brotli
import httpx
import pytest
from chat_common.app import install_error_handlers
from chat_gateway.web import (
    CSP_MANIFEST,
    inline_script_hashes,
    install_web,
    origin_allowed,
    parse_origins,
    prepare,
)
from fastapi import FastAPI

BOOT = b'self.__next_f.push([1,"hello"])'
PAGE = (
    b'<!doctype html><html><head><script src="/_next/static/chunks/main-abc.js" async></script>'
    b"<script>" + BOOT + b"</script></head><body><p>" + b"chat " * 200 + b"</p>"
    b'<script type="text/javascript">window.x=1</script></body></html>'
)


def sha(data: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode() + "'"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    (root / "_next/static/chunks").mkdir(parents=True)
    (root / "login").mkdir()
    (root / "index.html").write_bytes(PAGE)
    (root / "login.html").write_bytes(b"<!doctype html><title>login</title><script>boot()</script>")
    (root / "404.html").write_bytes(b"<!doctype html><title>missing</title>")
    (root / "_next/static/chunks/main-abc.js").write_bytes(b"console.log('app');" * 100)
    (root / ".secret").write_bytes(b"nope")
    prepare(root)
    return root


def client(web_dir: Path | str) -> httpx.AsyncClient:
    app = FastAPI(docs_url=None, redoc_url=None)  # as the gateway's
    install_error_handlers(app)

    @app.get("/v1/thing")
    async def thing() -> dict[str, bool]:
        return {"ok": True}

    install_web(app, str(web_dir))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def test_inline_script_hashes_are_those_of_the_inline_scripts_only() -> None:
    assert inline_script_hashes(PAGE) == [sha(BOOT), sha(b"window.x=1")]
    assert inline_script_hashes(b"<script src=x></script>") == []


def test_prepare_writes_the_manifest_and_compressed_siblings(export: Path) -> None:
    manifest = json.loads((export / CSP_MANIFEST).read_text())
    assert manifest["index.html"] == [sha(BOOT), sha(b"window.x=1")]
    assert manifest["login.html"] == [sha(b"boot()")]
    js = export / "_next/static/chunks/main-abc.js"
    assert gzip.decompress((export / "_next/static/chunks/main-abc.js.gz").read_bytes()) == js.read_bytes()
    assert brotli.decompress((export / "_next/static/chunks/main-abc.js.br").read_bytes()) == js.read_bytes()


async def test_html_gets_its_own_strict_csp(export: Path) -> None:
    c = client(export)
    r = await c.get("/", headers={"accept-encoding": "identity", "cookie": "chat_hint=1"})
    assert r.status_code == 200 and r.content == PAGE
    policy = r.headers["content-security-policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src"))
    assert script_src == f"script-src 'self' {sha(BOOT)} {sha(b'window.x=1')}"
    assert "unsafe-inline" not in script_src and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "http" not in policy  # no outside origin
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"
    login = await c.get("/login")
    assert login.status_code == 200 and sha(b"boot()") in login.headers["content-security-policy"]
    assert sha(BOOT) not in login.headers["content-security-policy"]


async def test_assets_precompressed_and_immutable(export: Path) -> None:
    c = client(export)
    js = (export / "_next/static/chunks/main-abc.js").read_bytes()
    r = await c.get("/_next/static/chunks/main-abc.js", headers={"accept-encoding": "gzip, br"})
    assert r.headers["content-encoding"] == "br" and r.content == js  # httpx decodes
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    r = await c.get("/_next/static/chunks/main-abc.js", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.content == js
    r = await c.get("/_next/static/chunks/main-abc.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in r.headers and r.content == js


async def test_unknown_paths_hidden_files_and_api_routes(export: Path) -> None:
    c = client(export)
    r = await c.get("/nowhere")
    assert r.status_code == 404 and b"missing" in r.content
    for path in ("/.secret", "/csp-hashes.json", "/index.html.gz", "/..%2f..%2fetc/passwd", "/_next/../../x"):
        assert (await c.get(path)).status_code == 404, path
    assert (await c.get("/v1/thing")).json() == {"ok": True}  # routes win over the catch-all
    r = await c.get("/v1/nothing")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_without_a_web_dir_only_api_and_docs(tmp_path: Path) -> None:
    c = client("")
    assert (await c.get("/")).status_code == 404
    r = await c.get("/docs")
    assert r.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in r.text
    policy = r.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "<script>" not in r.text.replace(" ", "")
    assert (await c.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200
    assert "SwaggerUIBundle" in (await c.get("/docs/assets/init.js")).text
    assert (await c.get("/docs/assets/../../setup.py")).status_code == 404
    assert (await c.get("/docs/assets/index.html")).status_code == 404


def test_origins() -> None:
    assert parse_origins("https://chat.example.com, http://127.0.0.1:3000") == [
        "https://chat.example.com",
        "http://127.0.0.1:3000",
    ]
    assert parse_origins("*") == ["*"]
    for bad in ("chat.example.com", "https://chat.example.com/app", "ftp://x"):
        with pytest.raises(ValueError):
            parse_origins(bad)
    allowed = ["https://app.example.com"]
    assert origin_allowed(None, "gw:8080", allowed)  # not a browser
    assert origin_allowed("http://gw:8080", "gw:8080", allowed)  # the gateway's own
    assert origin_allowed("https://app.example.com", "gw:8080", allowed)
    assert not origin_allowed("https://evil.example", "gw:8080", allowed)
    assert not origin_allowed("null", "gw:8080", allowed)
    assert not origin_allowed("https://app.example.com.evil.example", "gw:8080", allowed)
    assert origin_allowed("https://anything", "gw:8080", ["*"])


async def test_signed_out_visit_to_the_root_goes_straight_to_the_login_page(export: Path) -> None:
    c = client(export)
    r = await c.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/login/"
    assert r.headers["cache-control"] == "no-store" and "Cookie" in r.headers["vary"]
    assert (await c.get("/", headers={"cookie": "chat_hint=1"})).status_code == 200  # may hold a session
    assert (await c.get("/login/")).status_code == 200
    (export / "login.html").unlink()
    assert (await client(export).get("/")).status_code == 200  # an export without a login page
