"""The login page (/login/) is static HTML with one small script of its own and no React or
Next.js runtime (web/pages/login.tsx, web/lib/login-page.ts): checked in the exported file, in
what the gateway serves and in what the browser loads; and in a real browser it still logs in
and signs up (a full navigation to `/`, where the app resumes from the refresh cookie), shows
the login's own messages for a wrong password and a taken name, works its tabs from the
keyboard, sends a signed-in visitor on to the app without looping on a stale hint, and is
where logging out ends."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_devtools.cluster import Cluster
from playwright.sync_api import Page, expect
from test_web_app import PASSWORD, WAIT_MS, Rest

SCRIPT_SRC = re.compile(r"^/_next/static/login/[0-9a-f]{16}\.js$")


@pytest.fixture
def rest(stack: Cluster) -> Iterator[Rest]:
    r = Rest(stack.gateway_url)
    yield r
    r.http.close()


def in_app(page: Page) -> None:
    """The chat screen is up at `/` (the sidebar, or on a phone the button that opens it)."""
    sidebar = page.get_by_role("navigation", name="Conversations")
    expect(sidebar.or_(page.get_by_role("button", name="Open conversations")).first).to_be_visible(timeout=WAIT_MS)
    assert re.fullmatch(r"http://[^/]+/(\?.*)?", page.url), page.url


def script_tags(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html, re.IGNORECASE)


def test_the_exported_login_page_has_only_its_own_script(web_out: Path, stack: Cluster) -> None:
    html = (web_out / "login" / "index.html").read_text()
    tags = script_tags(html)
    assert len(tags) == 1, tags
    src = re.search(r'\ssrc="([^"]+)"', tags[0])
    assert src and SCRIPT_SRC.match(src.group(1)), tags[0]
    assert 'type="module"' in tags[0]
    assert (web_out / src.group(1).lstrip("/")).is_file()
    # nothing of the framework: no preloads of scripts, no page data, no RSC payload, no hydration root
    framework = ('as="script"', "modulepreload", "__NEXT_DATA__", "self.__next_f", "/_next/static/chunks/")
    for marker in framework:
        assert marker not in html, marker
    # the same stylesheet as the app's pages
    css = set(re.findall(r'rel="stylesheet" href="([^"]+)"', html))
    assert css and css == set(re.findall(r'rel="stylesheet" href="([^"]+)"', (web_out / "index.html").read_text()))

    with httpx.Client(base_url=stack.gateway_url, timeout=10) as http:
        r = http.get("/")  # signed out: the gateway's redirect
        assert r.status_code == 307 and r.headers["location"] == "/login/"
        r = http.get("/login/")
        assert r.status_code == 200
        assert len(script_tags(r.text)) == 1
        # no inline script, so no hash: only files of the gateway's own origin may run
        assert "script-src 'self';" in r.headers["content-security-policy"]
        js = http.get(src.group(1))
        assert js.status_code == 200
        assert js.headers["content-type"].split(";")[0] in ("application/javascript", "text/javascript")
        assert "immutable" in js.headers["cache-control"]
        assert len(js.content) < 16_000  # small, and no framework inside
        assert "react" not in js.text.lower() and "__next" not in js.text
        # a form sent before the script runs is a POST, refused: the password is never in a URL
        assert http.post("/login/", data={"username": "a", "password": "b"}).status_code == 405


def test_a_signed_out_visit_loads_one_script_then_logs_in(stack: Cluster, rest: Rest, new_page: Any) -> None:
    alice = rest.user("alice", "Alice Static")
    page = new_page(stack.gateway_url)
    new_page.allow_console(r"Failed to load resource: the server responded with a status of 401")
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert len(scripts) == 1 and SCRIPT_SRC.match(re.sub(r"^http://[^/]+", "", scripts[0])), scripts
    assert page.evaluate("typeof window.next === 'undefined' && typeof window.__NEXT_DATA__ === 'undefined'")

    form = page.get_by_role("form", name="Log in")
    form.get_by_label("Username").fill(alice["name"])
    form.get_by_label("Password").fill("not the password")
    form.get_by_role("button", name="Log in").click()
    expect(form.get_by_role("alert")).to_have_text("Wrong username or password.", timeout=WAIT_MS)
    expect(form.get_by_role("button", name="Log in")).to_be_enabled()
    assert page.evaluate("localStorage.getItem('chat-session')") is None

    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()
    in_app(page)
    # the hint as lib/session-hint.ts sets it: in storage for the app, in a cookie for the gateway
    assert page.evaluate("localStorage.getItem('chat-session')") == "1"
    hint = [c for c in page.context.cookies() if c["name"] == "chat_hint"]
    assert hint and hint[0]["value"] == "1" and hint[0]["path"] == "/" and hint[0]["sameSite"] == "Strict"
    # the app resumed from the refresh cookie: after a reload too
    page.reload()
    in_app(page)

    # signed in, /login/ sends the visitor on to the app
    page.goto("/login/")
    in_app(page)

    # logging out ends on the login page, which stays (the hint is gone) and keeps the saved theme
    page.evaluate("localStorage.setItem('chat-theme', 'dark')")
    page.get_by_role("button", name=re.compile(r"account menu$")).click()
    page.get_by_role("menuitem", name="Log out").click()
    page.wait_for_url(re.compile(r"/login/$"), timeout=WAIT_MS)
    expect(page.get_by_role("form", name="Log in")).to_be_visible()
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    assert page.evaluate("localStorage.getItem('chat-session')") is None


def test_sign_up_with_the_keyboard_a_taken_name_then_a_new_one(stack: Cluster, rest: Rest, new_page: Any) -> None:
    bob = rest.user("bob", "Bob Taken")
    page = new_page(stack.gateway_url)
    new_page.allow_console(r"Failed to load resource: the server responded with a status of 409")
    page.goto("/login/")
    login_tab = page.get_by_role("tab", name="Log in")
    signup_tab = page.get_by_role("tab", name="Sign up")
    expect(login_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("form", name="Sign up")).to_be_hidden()

    # Tab reaches the selected tab only (roving tabindex); → selects and focuses the next one
    login_tab.focus()
    page.keyboard.press("ArrowRight")
    expect(signup_tab).to_be_focused()
    expect(signup_tab).to_have_attribute("aria-selected", "true")
    expect(login_tab).to_have_attribute("aria-selected", "false")
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    expect(page.get_by_role("form", name="Log in")).to_be_hidden()
    page.keyboard.press("Home")
    expect(login_tab).to_be_focused()
    expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    page.keyboard.press("ArrowLeft")  # wraps around
    expect(signup_tab).to_be_focused()
    panel = page.get_by_role("tabpanel", name="Sign up")
    expect(panel).to_be_visible()

    form = page.get_by_role("form", name="Sign up")
    form.get_by_label("Username").press_sequentially(bob["name"].upper())
    expect(form.get_by_label("Username")).to_have_value(bob["name"])  # lowercased as typed
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign up").click()
    expect(form.get_by_role("alert")).to_have_text("That username is taken — pick another one.", timeout=WAIT_MS)

    # the field constraints are the browser's: a 2-letter name is not sent
    form.get_by_label("Username").fill("ab")
    form.get_by_role("button", name="Sign up").click()
    assert form.get_by_label("Username").evaluate("el => el.validity.valid") is False
    expect(form.get_by_role("alert")).to_have_text("That username is taken — pick another one.")

    name = f"carol{uuid.uuid4().hex[:8]}"
    form.get_by_label("Username").fill(name)
    form.get_by_label("Display name").fill("Carol Static")
    form.get_by_label("Password").press("Enter")
    in_app(page)
    r = rest.http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["display_name"] == "Carol Static"


def test_a_stale_hint_brings_the_visitor_back_to_the_login_page_once(stack: Cluster, new_page: Any) -> None:
    """A hint without a session (both halves set, no refresh cookie): `/` tries to resume,
    clears the hint and comes back; the storage half alone gets one refused refresh."""
    page = new_page(stack.gateway_url)
    page.goto("/login/")
    page.context.add_cookies([{"name": "chat_hint", "value": "1", "url": stack.gateway_url}])
    page.evaluate("localStorage.setItem('chat-session', '1')")
    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if r.url.endswith("/v1/auth/refresh") else None)
    pages: list[str] = []
    main = page.main_frame
    page.on("framenavigated", lambda f: pages.append(re.sub(r"^http://[^/]+", "", f.url)) if f == main else None)
    new_page.allow_console(r"Failed to load resource: the server responded with a status of 401")
    refresh = "**/v1/auth/refresh"
    with page.expect_response(refresh, timeout=WAIT_MS) as refused:
        page.goto("/login/")  # → / (the app resumes: refused) → /login/
    assert refused.value.status == 401
    page.wait_for_url(re.compile(r"/login/$"), timeout=WAIT_MS)
    page.wait_for_load_state()
    expect(page.get_by_role("form", name="Log in")).to_be_visible()
    # (the App Router's own history.replaceState on `/` counts as a second navigation event)
    assert [u for i, u in enumerate(pages) if i == 0 or pages[i - 1] != u] == ["/login/", "/", "/login/"], pages
    assert page.evaluate("localStorage.getItem('chat-session')") is None
    assert not [c for c in page.context.cookies() if c["name"] == "chat_hint"]
    assert len(refreshes) == 1, refreshes

    refreshes.clear()
    page.evaluate("localStorage.setItem('chat-session', '1')")  # the storage half only
    with page.expect_response(refresh, timeout=WAIT_MS) as refused:
        page.reload()  # the login page asks once itself, and stays
    assert refused.value.status == 401
    page.wait_for_function("localStorage.getItem('chat-session') === null", timeout=WAIT_MS)
    expect(page).to_have_url(re.compile(r"/login/$"))
    assert len(refreshes) == 1, refreshes
    expect(page.get_by_role("form", name="Log in")).to_be_visible()
