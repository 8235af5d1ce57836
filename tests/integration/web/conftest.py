"""Browser tests: the web app (built from web/ by chat_devtools.webapp) served by a real
gateway of a real stack, driven by Playwright 1.65 (Python) in Debian's Chromium — never a
downloaded browser. Elements are found by role and label, as a screen reader would.

Every page records console errors, uncaught exceptions and CSP violations; a test fails at
teardown if its pages had any. Without Chromium, npm or the built app the tests skip, and
under CI=true they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chat_devtools.cluster import Cluster
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from chat_devtools.webapp import BuildFailed, ensure_built

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("CHAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# Collected in the page before any of its scripts runs (Playwright injects it over CDP, not
# as page script, so the CSP does not apply to it).
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def _missing(msg: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def web_out() -> Path:
    try:
        out = ensure_built(REPO, required=os.environ.get("CI") == "true")
    except BuildFailed as e:
        pytest.fail(f"the web app does not build:\n{e}")
    if out is None:
        _missing("no web app to test (web/package.json missing or npm not installed)")
    assert out is not None
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module-scoped: Playwright's sync API keeps an event loop running in this thread for
    # as long as it is open, and the asyncio tests that run after a module in the same
    # process (pytest-xdist spreads modules over workers in any order) need it gone.
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).is_file():
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def stack(cluster: ClusterFactory, web_out: Path) -> Cluster:
    return cluster(media=True, search=True, env={**NO_RATE_LIMITS, "GATEWAY_WEB_DIR": str(web_out)})


@dataclass
class Problems:
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    pages: list[Any] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        out: list[str] = []
        for page in self.pages:
            if not page.is_closed():
                out += page.evaluate("window.__cspViolations || []")
        return out


class Pages:
    """``new_page(base_url, **context options)``: a page in a fresh browser context (its own
    cookies and storage: one user), recording problems. ``allow_console(regex)``: console
    errors a test provokes on purpose (the browser's own network messages)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.problems = Problems()
        self.contexts: list[Any] = []
        self.allowed: list[re.Pattern[str]] = []

    def __call__(self, base_url: str, **options: Any) -> Any:
        ctx = self.browser.new_context(base_url=base_url, **options)
        self.contexts.append(ctx)
        ctx.add_init_script(RECORD_CSP)
        page = ctx.new_page()
        page.on("console", lambda m: self.problems.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.page_errors.append(str(e)))
        if os.environ.get("CHAT_TEST_BROWSER_LOG"):
            page.on("console", lambda m: print(f"[console {m.type}] {m.text}"))
            page.on("websocket", lambda w: w.on("framereceived", lambda f: print(f"[ws<] {str(f)[:300]}")))
            page.on("request", lambda r: print(f"[req] {r.method} {r.url}"))
            page.on("requestfailed", lambda r: print(f"[requestfailed] {r.url} {r.failure}"))
        self.problems.pages.append(page)
        return page

    def allow_console(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def check_and_close(self) -> None:
        violations = self.problems.csp_violations()
        for ctx in self.contexts:
            ctx.close()
        errors = [e for e in self.problems.console_errors if not any(p.search(e) for p in self.allowed)]
        assert not self.problems.page_errors, self.problems.page_errors
        assert not violations, violations
        assert not errors, errors


@pytest.fixture
def new_page(browser: Any) -> Iterator[Pages]:
    pages = Pages(browser)
    yield pages
    pages.check_and_close()
