"""The web app in a real browser against a real stack (see conftest.py): two people chat with
read ticks and typing; message text is never HTML; an image upload shows its thumbnail on the
other side; search finds a message and jumps to it; the gateway the page is on is killed and
the page recovers without a reload, with nothing missing or doubled, and a message written
while it was down is delivered after; a 1,000-message history scrolls back."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_devtools.cluster import Cluster
from PIL import Image
from playwright.sync_api import Page, expect

PASSWORD = "browser tests password"
WAIT_MS = 15_000


class Rest:
    """Setting the scene over REST (users, conversations, messages) as other clients would."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)

    def user(self, prefix: str, display: str | None = None) -> dict[str, Any]:
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        body = {"username": name, "password": PASSWORD, "display_name": display or name}
        r = self.http.post("/v1/auth/register", json=body)
        assert r.status_code == 201, r.text
        r = self.http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"name": name, "display": body["display_name"], **r.json()}

    def h(self, u: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {u['access_token']}"}

    def conv(self, u: dict[str, Any], kind: str, others: list[dict[str, Any]], **kw: Any) -> str:
        body = {"kind": kind, "members": [o["user"]["id"] for o in others], **kw}
        r = self.http.post("/v1/conversations", headers=self.h(u), json=body)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def send(self, u: dict[str, Any], conv: str, body: str) -> dict[str, Any]:
        msg = {"client_msg_id": uuid.uuid4().hex, "body": body}
        r = self.http.post(f"/v1/conversations/{conv}/messages", headers=self.h(u), json=msg)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def history(self, u: dict[str, Any], conv: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/v1/conversations/{conv}/messages", headers=self.h(u), params={"limit": 200})
        assert r.status_code == 200, r.text
        return list(r.json()["events"])


def log_in(page: Page, name: str) -> None:
    page.goto("/")
    page.get_by_label("Username").first.fill(name)
    page.get_by_label("Password").first.fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    # the sidebar, or on a phone the button that opens it
    sidebar = page.get_by_role("navigation", name="Conversations")
    expect(sidebar.or_(page.get_by_role("button", name="Open conversations")).first).to_be_visible(timeout=WAIT_MS)


def open_conv(page: Page, title: str) -> None:
    nav = page.get_by_role("navigation", name="Conversations")
    item = nav.get_by_role("button", name=re.compile("^" + re.escape(title))).first
    try:
        item.wait_for(timeout=WAIT_MS)
    except Exception as e:
        raise AssertionError(f"no conversation {title!r} in the sidebar: {nav.inner_text()!r}") from e
    item.click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible(timeout=WAIT_MS)


def write(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def conversation(page: Page) -> Any:
    return page.get_by_role("region", name="Conversation")


@pytest.fixture
def rest(stack: Cluster) -> Iterator[Rest]:
    r = Rest(stack.gateway_url)
    yield r
    r.http.close()


def test_sign_up_then_two_people_chat_with_ticks_and_typing(stack: Cluster, rest: Rest, new_page: Any) -> None:
    bob = rest.user("bob", "Bob Browser")
    alice_name = f"alice{uuid.uuid4().hex[:8]}"
    alice_page = new_page(stack.gateway_url)
    alice_page.goto("/")
    alice_page.get_by_role("tab", name="Sign up").click()
    form = alice_page.get_by_role("form", name="Sign up")
    form.get_by_label("Username").fill(alice_name)
    form.get_by_label("Display name").fill("Alice Browser")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign up").click()
    expect(alice_page.get_by_role("navigation", name="Conversations")).to_be_visible(timeout=WAIT_MS)
    r = rest.http.post("/v1/auth/login", json={"username": alice_name, "password": PASSWORD})
    alice = {"name": alice_name, **r.json()}
    dm = rest.conv(alice, "dm", [bob])
    assert dm

    bob_page = new_page(stack.gateway_url)
    log_in(bob_page, bob["name"])
    open_conv(alice_page, "Bob Browser")
    word = f"hello{uuid.uuid4().hex[:6]}"
    write(alice_page, f"{word} from the browser")
    open_conv(bob_page, "Alice Browser")
    expect(conversation(bob_page).get_by_text(f"{word} from the browser")).to_have_count(1, timeout=WAIT_MS)
    # bob has it on screen: alice's message shows read
    expect(conversation(alice_page).get_by_role("img", name="Read").last).to_be_visible(timeout=WAIT_MS)
    # bob types: alice sees it
    bob_page.get_by_role("textbox", name="Message").press_sequentially("typing a reply", delay=20)
    expect(alice_page.get_by_text(re.compile(r"Bob Browser is typing"))).to_be_visible(timeout=WAIT_MS)
    bob_page.get_by_role("textbox", name="Message").press("Enter")
    expect(conversation(alice_page).get_by_text("typing a reply")).to_have_count(1, timeout=WAIT_MS)


def test_message_text_is_never_html(stack: Cluster, rest: Rest, new_page: Any) -> None:
    alice, bob = rest.user("alice", "Alice Html"), rest.user("bob", "Bob Html")
    conv = rest.conv(alice, "dm", [bob])
    attack = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> https://example.com/ok'
    rest.send(alice, conv, attack)
    page = new_page(stack.gateway_url)
    log_in(page, bob["name"])
    open_conv(page, "Alice Html")
    expect(conversation(page).get_by_text("<img src=x", exact=False)).to_have_count(1, timeout=WAIT_MS)
    assert page.evaluate("window.__pwned") is None
    assert conversation(page).locator("img[src='x']").count() == 0
    link = conversation(page).get_by_role("link", name="https://example.com/ok")
    expect(link).to_have_attribute("rel", re.compile("noopener"))


def test_image_upload_shows_its_thumbnail_to_the_other_side(
    stack: Cluster, rest: Rest, new_page: Any, tmp_path: Path
) -> None:
    alice, bob = rest.user("alice", "Alice Pics"), rest.user("bob", "Bob Pics")
    rest.conv(alice, "dm", [bob])
    image = tmp_path / "tiny-photo.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(image)
    alice_page, bob_page = new_page(stack.gateway_url), new_page(stack.gateway_url)
    log_in(alice_page, alice["name"])
    log_in(bob_page, bob["name"])
    open_conv(alice_page, "Bob Pics")
    open_conv(bob_page, "Alice Pics")
    alice_page.locator("input[type=file]").set_input_files(str(image))
    attachments = alice_page.get_by_role("list", name="Attachments")
    expect(attachments.get_by_text("tiny-photo.png")).to_be_visible(timeout=WAIT_MS)
    expect(attachments.get_by_label(re.compile("^Uploading"))).to_have_count(0, timeout=WAIT_MS)  # uploaded
    alice_page.get_by_role("button", name="Send").click()
    thumb = conversation(bob_page).get_by_role("button", name=re.compile("Open image tiny-photo"))
    expect(thumb).to_be_visible(timeout=WAIT_MS)
    img = thumb.locator("img")
    expect(img).to_have_count(1)
    bob_page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=WAIT_MS)


def test_search_finds_a_message_and_jumps_to_it(stack: Cluster, rest: Rest, new_page: Any) -> None:
    alice, bob = rest.user("alice", "Alice Search"), rest.user("bob", "Bob Search")
    conv = rest.conv(alice, "group", [bob])
    word = f"needle{uuid.uuid4().hex[:6]}"
    target = rest.send(alice, conv, f"the {word} is here")
    for i in range(60):  # the target is far above the newest page
        rest.send(alice, conv, f"filler {i}")
    page = new_page(stack.gateway_url)
    log_in(page, bob["name"])
    deadline = time.monotonic() + 20
    page.keyboard.press("Control+k")
    box = page.get_by_role("searchbox").or_(page.get_by_role("textbox", name=re.compile("Search"))).first
    expect(box).to_be_visible(timeout=WAIT_MS)
    results = page.get_by_role("list", name="Search results")
    while True:  # indexing is asynchronous
        box.fill(word)
        box.press("Enter")
        try:
            expect(results.get_by_text(word)).to_be_visible(timeout=1500)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "search never found the message"
    assert results.locator("mark").first.inner_text() == word
    results.get_by_text(word).first.click()
    expect(conversation(page).get_by_text(f"the {word} is here")).to_be_visible(timeout=WAIT_MS)
    assert target["seq"] >= 1


def test_gateway_killed_the_page_recovers_without_reload(stack: Cluster, rest: Rest, new_page: Any) -> None:
    alice, bob = rest.user("alice", "Alice Kill"), rest.user("bob", "Bob Kill")
    conv = rest.conv(alice, "dm", [bob])
    rest.send(bob, conv, "before the crash")
    page = new_page(stack.gateway_url)
    log_in(page, alice["name"])
    open_conv(page, "Bob Kill")
    expect(conversation(page).get_by_text("before the crash")).to_have_count(1, timeout=WAIT_MS)
    page.evaluate("window.__marker = 42")  # gone if the page reloads
    # the browser logs the refused reconnects while the gateway is down (not the app's errors)
    new_page.allow_console(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|Failed to load resource")
    gateway = stack.gateways[0]
    gateway.kill()
    expect(page.get_by_role("status").filter(has_text="Reconnecting")).to_be_visible(timeout=WAIT_MS)
    write(page, "written while the gateway was down")  # waits in the outbox
    gateway.start()  # the same port: the page's origin
    missed = [rest.send(bob, conv, f"missed {i}") for i in range(3)]
    for m in missed:
        expect(conversation(page).get_by_text(m["body"], exact=True)).to_have_count(1, timeout=30_000)
    expect(page.get_by_role("status").filter(has_text="Reconnecting")).to_have_count(0, timeout=WAIT_MS)
    assert page.evaluate("window.__marker") == 42
    expect(conversation(page).get_by_text("before the crash")).to_have_count(1)
    deadline = time.monotonic() + 30
    while True:  # the outbox went out once, after the reconnect
        bodies = [e.get("body") for e in rest.history(bob, conv) if e["kind"] == "message"]
        if "written while the gateway was down" in bodies:
            break
        assert time.monotonic() < deadline, bodies
        time.sleep(0.3)
    assert bodies.count("written while the gateway was down") == 1
    expect(conversation(page).get_by_text("written while the gateway was down")).to_have_count(1)


def test_a_long_history_scrolls_back(stack: Cluster, rest: Rest, new_page: Any) -> None:
    alice, bob = rest.user("alice", "Alice Long"), rest.user("bob", "Bob Long")
    conv = rest.conv(alice, "dm", [bob])
    for i in range(1000):
        rest.send(alice, conv, f"history line {i:04d}")
    page = new_page(stack.gateway_url)
    log_in(page, bob["name"])
    open_conv(page, "Alice Long")
    expect(conversation(page).get_by_text("history line 0999")).to_be_visible(timeout=WAIT_MS)
    first = conversation(page).get_by_text("history line 0000", exact=True)
    deadline = time.monotonic() + 60
    while first.count() == 0:
        assert time.monotonic() < deadline, "never scrolled back to the first message"
        page.mouse.move(600, 300)
        page.mouse.wheel(0, -3000)
        page.wait_for_timeout(100)
    expect(first).to_be_visible(timeout=WAIT_MS)
    # nothing doubled on the way: each of a sample of lines is there once
    for i in (0, 1, 2):
        expect(conversation(page).get_by_text(f"history line {i:04d}", exact=True)).to_have_count(1)


def test_switching_conversations_shows_only_the_selected_one(stack: Cluster, rest: Rest, new_page: Any) -> None:
    alice, bob = rest.user("alice", "Alice Switch"), rest.user("bob", "Bob Switch")
    group = rest.conv(alice, "group", [bob])
    channel = rest.conv(alice, "channel", [bob], name=f"chan-{uuid.uuid4().hex[:4]}")
    rest.send(alice, group, "only in the group")
    rest.send(bob, channel, "only in the channel")
    page = new_page(stack.gateway_url)
    log_in(page, alice["name"])
    for title, here, elsewhere in (
        ("chan-", "only in the channel", "only in the group"),
        ("Bob Switch", "only in the group", "only in the channel"),
        ("chan-", "only in the channel", "only in the group"),
    ):
        open_conv(page, title)
        expect(conversation(page).get_by_text(here)).to_have_count(1, timeout=WAIT_MS)
        expect(conversation(page).get_by_text(elsewhere)).to_have_count(0)
        expect(conversation(page).get_by_role("region", name="Messages")).to_have_count(1)
