"""Accessibility and looks: axe-core (from the web app's own node_modules) finds no serious or
critical violation on the login screen, the chat screen or the admin page, in the light and
the dark theme and at phone width (360 px). With CHAT_SCREENSHOTS_DIR set, the screens are
saved there (docs/screenshots/ holds the committed ones)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_devtools.cluster import Cluster
from playwright.sync_api import Page, expect
from test_web_app import Rest, conversation, log_in, open_conv, write

AXE = Path(__file__).resolve().parents[3] / "web" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = os.environ.get("CHAT_SCREENSHOTS_DIR")


@pytest.fixture
def rest(stack: Cluster) -> Iterator[Rest]:
    r = Rest(stack.gateway_url)
    yield r
    r.http.close()


def axe_violations(page: Page) -> list[str]:
    if not AXE.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AXE} missing (npm ci in web/)")
        pytest.skip(f"{AXE} missing")
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.mark.parametrize(
    ("theme", "width"), [("light", 1280), ("dark", 1280), ("light", 360)], ids=["light", "dark", "phone"]
)
def test_screens_have_no_serious_accessibility_violation(
    stack: Cluster, rest: Rest, new_page: Any, theme: str, width: int
) -> None:
    alice, bob = rest.user("alice", "Alice Axe"), rest.user("bob", "Bob Axe")
    conv = rest.conv(alice, "group", [bob], name=None)
    channel = rest.conv(alice, "channel", [bob], name=f"design-{uuid.uuid4().hex[:4]}")
    texts = ["Morning! Draft is up: https://example.com/draft", "Looks good 👍", "北京的会议改到周三"]
    for i, text in enumerate(texts):
        rest.send(alice if i % 2 == 0 else bob, conv, text)
    rest.send(bob, channel, "Channel news")
    # bypass_csp: only so that the axe script can be injected into the page
    page = new_page(stack.gateway_url, color_scheme=theme, viewport={"width": width, "height": 800}, bypass_csp=True)
    page.goto("/")
    expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    shot(page, f"login-{theme}-{width}")
    assert axe_violations(page) == []

    log_in(page, alice["name"])
    if width < 768:
        page.get_by_role("button", name="Open conversations").first.click()
    open_conv(page, "Bob Axe")
    write(page, "Let's ship it")
    expect(conversation(page).get_by_text("Let's ship it")).to_have_count(1)
    shot(page, f"chat-{theme}-{width}")
    assert axe_violations(page) == []
