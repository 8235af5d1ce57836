"""Web app under a fast conversation (web-app issue): a conversation receiving ``--rate``
messages/s (default 100) for ``--duration`` s (default 30) stays smooth and loses nothing.

A real stack (one gateway serving the built export), one reader in Debian's Chromium with the
conversation open, and one writer sending over the WebSocket at a fixed rate (open loop, rate
limits off). In the page a ``PerformanceObserver`` records every long task (main-thread work
over 50 ms) and a ``MutationObserver`` records every message row (by seq) that was ever
rendered: all ``rate x duration`` must have been. The list keeps a window of rows in the DOM,
so the last ``--check`` (default 100) are compared at the end: each present once, in order.

    .venv/bin/python bench/web_stream.py --rate 100 --duration 30 --repeat 3

"60 fps" is measured as no long task over 50 ms while the messages arrive. Bounded by its
rate and duration (and a 60 s drain); loopback only.

``--web DIR`` serves that export (after ``python -m chat_gateway.web prepare DIR``) instead
of building ``web/``. ``--trace DIR`` records a Chromium performance trace of each run's
streaming window (``DIR/run-N.json``, open it in the DevTools Performance panel) and prints
what the long tasks were made of (``bench/web_trace.py``); ``--trace-js`` adds V8's sampling
profiler (which functions; it slows the page, so such a run's long tasks are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets
from chat_devtools.cluster import Cluster, sqlite_urls
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.webapp import ensure_built
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from web_trace import JS_SAMPLES, TRACE_CATEGORIES, long_task_report

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench web stream password"
OFF = {
    "GATEWAY_RATE_SEND_BURST": "0",
    "GATEWAY_RATE_FRAMES_BURST": "0",
    "GATEWAY_RATE_REST_BURST": "0",
}
OBSERVE = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push(Math.round(e.duration));
}).observe({ type: "longtask", buffered: true });
window.__rows = new Set();
new MutationObserver((muts) => {
  for (const m of muts) for (const n of m.addedNodes) {
    if (n.nodeType !== 1) continue;
    const k = n.getAttribute("data-key");
    if (k && k[0] === "e") window.__rows.add(k);
    n.querySelectorAll("[data-key^=e]").forEach((x) => window.__rows.add(x.getAttribute("data-key")));
  }
}).observe(document, { childList: true, subtree: true });
"""


def account(http: httpx.Client, prefix: str, display: str) -> dict[str, Any]:
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    r = http.post("/v1/auth/register", json={"username": name, "password": PASSWORD, "display_name": display})
    assert r.status_code == 201, r.text
    r = http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"name": name, **r.json()}


async def write(ws_url: str, token: str, conv: str, rate: float, duration: float, tag: str) -> tuple[int, int]:
    """Open loop: message i is due at start + i/rate. A send refused for load (``unavailable``,
    ``rate_limited``) is sent again with the same client_msg_id after its retry_after_ms, as a
    client does. Returns (acked, retries)."""
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        while json.loads(await ws.recv())["type"] != "auth_ok":
            pass
        n = int(rate * duration)
        acked: set[str] = set()
        retries = 0
        done = asyncio.Event()

        def frame(i: int) -> str:
            return json.dumps({"type": "send", "conv": conv, "client_msg_id": f"{tag}-{i}", "body": f"{tag} {i:05d}"})

        async def resend(cmid: str, after_ms: int) -> None:
            await asyncio.sleep(after_ms / 1000)
            await ws.send(frame(int(cmid.rsplit("-", 1)[1])))

        async def reader() -> None:
            nonlocal retries
            async for raw in ws:
                f = json.loads(raw)
                if f.get("type") == "ack":
                    acked.add(f["client_msg_id"])
                    if len(acked) == n:
                        done.set()
                        return
                elif f.get("type") == "error" and f.get("code") in ("unavailable", "rate_limited"):
                    retries += 1
                    asyncio.get_running_loop().create_task(resend(f["client_msg_id"], f.get("retry_after_ms", 100)))

        task = asyncio.create_task(reader())
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(frame(i))
        try:
            await asyncio.wait_for(done.wait(), 60)
        except TimeoutError:
            pass
        task.cancel()
        return len(acked), retries


def one_run(
    c: Cluster, browser: Any, rate: float, duration: float, check: int, trace: Path | None = None, js: bool = False
) -> dict[str, Any]:
    with httpx.Client(base_url=c.gateway_url, timeout=30) as http:
        writer, reader = account(http, "writer", "Writer"), account(http, "reader", "Reader")
        r = http.post(
            "/v1/conversations",
            headers={"Authorization": f"Bearer {writer['access_token']}"},
            json={"kind": "dm", "members": [reader["user"]["id"]]},
        )
        conv = r.json()["id"]
    ctx = browser.new_context(base_url=c.gateway_url, viewport={"width": 1280, "height": 900})
    ctx.add_init_script(OBSERVE)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/")
    page.get_by_label("Username").first.fill(reader["name"])
    page.get_by_label("Password").first.fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_role("navigation", name="Conversations").get_by_role("button", name="Writer").first.click()
    page.get_by_role("textbox", name="Message").wait_for()
    page.evaluate("window.__longTasks = []")
    rows_before = page.evaluate("window.__rows.size")
    if trace is not None:
        browser.start_tracing(page=page, path=str(trace), categories=TRACE_CATEGORIES + ([JS_SAMPLES] if js else []))
    tag = uuid.uuid4().hex[:6]
    started = time.monotonic()
    out: list[tuple[int, int]] = []  # the writer's own thread (Playwright's sync API owns this one's loop)
    t = threading.Thread(
        target=lambda: out.append(asyncio.run(write(c.ws_urls[0], writer["access_token"], conv, rate, duration, tag)))
    )
    t.start()
    t.join(duration + 90)
    acked, retries = out[0] if out else (0, 0)
    n = int(rate * duration)
    last = f"{tag} {n - 1:05d}"
    page.get_by_text(last, exact=True).wait_for(timeout=60_000)
    seen_after_s = time.monotonic() - started - duration
    if trace is not None:
        browser.stop_tracing()
    long_tasks: list[int] = page.evaluate("window.__longTasks")
    rendered = page.evaluate("window.__rows.size") - rows_before
    region = page.get_by_role("region", name="Messages", exact=True)
    texts = region.inner_text()
    tail = [f"{tag} {i:05d}" for i in range(n - check, n)]
    positions = [texts.find(t) for t in tail]
    found = [p for p in positions if p >= 0]
    in_order = len(found) == len(tail) and found == sorted(found)
    doubled = sum(texts.count(t) > 1 for t in tail)
    ctx.close()
    return {
        "sent": n,
        "acked": acked,
        "send_retries": retries,
        "last_seen_after_end_s": round(seen_after_s, 2),
        "long_tasks": len(long_tasks),
        "long_task_max_ms": max(long_tasks, default=0),
        "long_task_total_ms": sum(long_tasks),
        "rows_rendered": rendered,
        "tail_found": len(found),
        "tail_in_order": in_order,
        "tail_doubled": doubled,
        "console_errors": len(errors),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--check", type=int, default=100, help="the last N messages compared in the DOM")
    ap.add_argument("--web", type=Path, help="serve this (prepared) export instead of building web/")
    ap.add_argument("--trace", type=Path, help="write a Chromium trace per run here and summarise its long tasks")
    ap.add_argument("--trace-js", action="store_true", help="with --trace: also sample JavaScript (slows the page)")
    args = ap.parse_args()
    assert 0 < args.rate <= 1000 and 0 < args.duration <= 120 and 0 < args.repeat <= 20
    web = args.web.resolve() if args.web else ensure_built(REPO, required=True)
    assert web is not None and (web / "index.html").is_file()
    if args.trace:
        args.trace.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="chat-bench-web-stream-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        c = Cluster(
            nats.url,
            nats=nats,
            database_urls=sqlite_urls(tmp / "db"),
            data_dir=tmp,
            log_dir=tmp / "logs",
            log_level="WARNING",
            env={"GATEWAY_WEB_DIR": str(web), **OFF},
        ).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
                )
                for i in range(args.repeat):
                    trace = args.trace / f"run-{i + 1}.json" if args.trace else None
                    r = one_run(c, browser, args.rate, args.duration, args.check, trace, args.trace_js)
                    results.append(r)
                    print(json.dumps({"run": i + 1, **r}), flush=True)
                    if trace is not None:
                        print(long_task_report(trace), flush=True)
                browser.close()
        finally:
            c.stop()
            nats.stop()
    print(f"\nmedians of {len(results)} runs:")
    for k in results[0]:
        vals = [float(r[k]) for r in results]
        print(f"  {k:24} {statistics.median(vals):10.2f}   (runs {', '.join(f'{v:g}' for v in vals)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
