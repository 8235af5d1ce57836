"""Web app budgets (web-app issue): Lighthouse 12.2.3 with Debian's Chromium on ``/``, desktop
and mobile (Lighthouse's provided throttling: simulated slow 4G and a 4x slower CPU for
mobile), against the real gateway serving the built export (precompressed, CSP).

Reports per form factor the medians of ``--repeat`` runs: the four category scores, time to
interactive, total blocking time, largest contentful paint, and the JavaScript transferred.
Budgets: accessibility and best practices ≥ 0.95, performance ≥ 0.90, TTI ≤ 1.5 s, JS on the
wire ≤ 300 KB.

    (cd bench/web && npm ci)          # lighthouse 12.2.3, once
    .venv/bin/python bench/web_perf.py --repeat 3

``--web DIR`` serves that export (after ``python -m chat_gateway.web prepare DIR``) instead
of building ``web/``; ``--keep DIR`` keeps the Lighthouse reports (JSON) there, with each
run's trace (open it in the DevTools Performance panel).

Bounded: ``--repeat`` runs of each form factor, each with a 120 s timeout; loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chat_devtools.cluster import Cluster, sqlite_urls
from chat_devtools.nats import NatsServer
from chat_devtools.nats_accounts import ChatAccount
from chat_devtools.webapp import ensure_built

REPO = Path(__file__).resolve().parents[1]
LIGHTHOUSE = REPO / "bench" / "web" / "node_modules" / ".bin" / "lighthouse"
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-background-networking "
    "--disable-component-update --disable-sync --no-first-run"
)
BUDGET = {"accessibility": 0.95, "best-practices": 0.95, "performance": 0.90}


def lighthouse(url: str, desktop: bool, out: Path, assets: bool = False) -> dict[str, Any]:
    cmd = [str(LIGHTHOUSE), url, "--quiet", "--output=json", f"--output-path={out}", f"--chrome-flags={CHROME_FLAGS}"]
    if desktop:
        cmd.append("--preset=desktop")
    if assets:
        cmd.append("--save-assets")  # the trace and DevTools log beside the report
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
    subprocess.run(cmd, env=env, check=True, timeout=120, capture_output=True)
    report = json.loads(out.read_text())
    audits = report["audits"]
    scripts = [i for i in audits["resource-summary"]["details"]["items"] if i["resourceType"] == "script"]
    return {
        **{k: v["score"] for k, v in report["categories"].items()},
        "tti_ms": audits["interactive"]["numericValue"],
        "tbt_ms": audits["total-blocking-time"]["numericValue"],
        "lcp_ms": audits["largest-contentful-paint"]["numericValue"],
        "js_kb": (scripts[0]["transferSize"] if scripts else 0) / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--web", type=Path, help="serve this (prepared) export instead of building web/")
    ap.add_argument("--keep", type=Path, help="keep the Lighthouse reports (JSON) in this directory")
    args = ap.parse_args()
    assert 0 < args.repeat <= 20
    if not LIGHTHOUSE.exists():
        print("lighthouse missing: (cd bench/web && npm ci)", file=sys.stderr)
        return 2
    web = args.web.resolve() if args.web else ensure_built(REPO, required=True)
    assert web is not None and (web / "index.html").is_file()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {"desktop": [], "mobile": []}
    with tempfile.TemporaryDirectory(prefix="chat-bench-web-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "nats", accounts=[ChatAccount.generate()]).start()
        c = Cluster(
            nats.url,
            nats=nats,
            database_urls=sqlite_urls(tmp / "db"),
            data_dir=tmp,
            log_dir=tmp / "logs",
            log_level="WARNING",
            env={"GATEWAY_WEB_DIR": str(web)},
        ).start()
        try:
            url = c.gateway_url.rstrip("/") + "/"
            for i in range(args.repeat):
                for form in ("desktop", "mobile"):
                    r = lighthouse(url, form == "desktop", (args.keep or tmp) / f"{form}-{i + 1}.json", bool(args.keep))
                    results[form].append(r)
                    print(json.dumps({"run": i + 1, "form": form, **r}), flush=True)
        finally:
            c.stop()
            nats.stop()
    print(f"\nmedians of {args.repeat} runs:")
    ok = True
    for form, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        verdicts = [f"{k} {med[k]:.2f} ({'met' if med[k] >= v else 'NOT met'} ≥ {v})" for k, v in BUDGET.items()]
        verdicts.append(f"TTI {med['tti_ms']:.0f} ms ({'met' if med['tti_ms'] <= 1500 else 'NOT met'} ≤ 1500)")
        verdicts.append(f"JS {med['js_kb']:.0f} KB ({'met' if med['js_kb'] <= 300 else 'NOT met'} ≤ 300)")
        verdicts.append(f"TBT {med['tbt_ms']:.0f} ms, LCP {med['lcp_ms']:.0f} ms")
        ok = ok and all("NOT" not in v for v in verdicts)
        print(f"  {form:8} " + "; ".join(verdicts))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
