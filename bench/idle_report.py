"""Tables of bench/idle.py: medians over the runs, and the memory profile of --profile."""

from __future__ import annotations

import json
import statistics
import sysconfig
import tracemalloc
from pathlib import Path
from typing import Any

STDLIB = sysconfig.get_paths()["stdlib"]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per step (and for the hold) over the runs."""
    table = []
    keys = list(dict.fromkeys((r["connections"], bool(r.get("hold"))) for r in rows))
    for n, hold in keys:
        rs = [r for r in rows if r["connections"] == n and bool(r.get("hold")) == hold]
        t: dict[str, Any] = {"connections": n, "phase": "hold" if hold else "settle", "runs": len(rs)}
        for k in ("rss", "uss", "pss"):
            vals = [r[f"{k}_kib_per_conn"] for r in rs]
            t[f"{k}_kib_per_conn"] = round(statistics.median(vals), 1)
            t[f"{k}_runs"] = vals
        t["idle_s"] = statistics.median(r["idle_s"] for r in rs)
        t["gateway_rss_mib"] = round(statistics.median(r["memory"]["rss"] for r in rs) / 1024, 1)
        t["baseline_rss_mib"] = round(statistics.median(r["baseline"]["rss"] for r in rs) / 1024, 1)
        t["gateway_cpu_pct"] = statistics.median(r["gateway_cpu_pct"] for r in rs)
        t["closed"] = sum(r["closed"] for r in rs)
        t["heartbeats_ok"] = all(r["heartbeats_ok"] for r in rs)
        t["presence_online"] = [f"{r['presence']['online']}/{r['presence']['connected']}" for r in rs]
        t["online_not_connected"] = sum(r["presence"]["online_not_connected"] for r in rs)
        table.append(t)
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    cols = ["connections", "phase", "idle s", "KiB/conn RSS", "USS", "PSS", "RSS runs", "gateway RSS MiB"]
    cols += ["CPU %", "closed", "heartbeats", "presence online"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for t in table:
        cells = [
            f"{t['connections']:,}",
            t["phase"],
            f"{t['idle_s']:.0f}",
            f"{t['rss_kib_per_conn']:.1f}",
            f"{t['uss_kib_per_conn']:.1f}",
            f"{t['pss_kib_per_conn']:.1f}",
            " / ".join(f"{v:.1f}" for v in t["rss_runs"]),
            f"{t['baseline_rss_mib']:.0f} -> {t['gateway_rss_mib']:.0f}",
            f"{t['gateway_cpu_pct']:.1f}",
            str(t["closed"]),
            "ok" if t["heartbeats_ok"] else "MISSED",
            ", ".join(t["presence_online"])
            + (f" (+{t['online_not_connected']} stray)" * bool(t["online_not_connected"])),
        ]
        print("| " + " | ".join(cells) + " |")


# --- the tracemalloc profile ----------------------------------------------------------------
def _site(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for marker in ("/site-packages/", "/src/"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    if name.startswith(STDLIB):
        name = "stdlib:" + name[len(STDLIB) + 1 :]
    return f"{name}:{frame.lineno}"


def _caller(tb: tracemalloc.Traceback) -> str:
    """Innermost frame, and the innermost frame outside the standard library that led to it."""
    frames = list(tb)[::-1]  # innermost first
    inner = _site(frames[0])
    for f in frames:
        if not f.filename.startswith(STDLIB) and "tracemalloc" not in f.filename:
            outer = _site(f)
            return inner if outer == inner else f"{outer}  <- {inner}"
    return inner


def print_profile(d: Path, steps: list[int], top: int = 30) -> None:
    """Snapshot k (after step k) against snapshot 0 (the baseline), per connection."""
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    base = tracemalloc.Snapshot.load(str(d / "0.snap")).filter_traces(filters)
    info0 = json.loads((d / "0.json").read_text())
    for k, n in enumerate(steps, start=1):
        snap = tracemalloc.Snapshot.load(str(d / f"{k}.snap")).filter_traces(filters)
        info = json.loads((d / f"{k}.json").read_text())
        diff = snap.compare_to(base, "traceback")
        total = sum(s.size_diff for s in diff)
        print(f"\n## memory profile at {n:,} idle connections (tracemalloc, Python allocations only)")
        print(f"traced: {total / n:,.0f} bytes per connection (of the process's RSS growth; the rest is")
        print("outside Python's allocator: the kernel's socket buffers are not in RSS, libuv's are)")
        by_caller: dict[str, list[int]] = {}
        for s in diff:
            v = by_caller.setdefault(_caller(s.traceback), [0, 0])
            v[0] += s.size_diff
            v[1] += s.count_diff
        print(f"\n### by allocating line and its first caller outside the standard library (top {top})")
        print("| bytes/conn | blocks/conn | where |")
        print("|---|---|---|")
        for where, (size, count) in sorted(by_caller.items(), key=lambda kv: -kv[1][0])[:top]:
            print(f"| {size / n:,.0f} | {count / n:.2f} | `{where}` |")
        by_file: dict[str, int] = {}
        for s in snap.compare_to(base, "filename"):
            key = _site(s.traceback[0]).rsplit(":", 1)[0]
            by_file[key] = by_file.get(key, 0) + s.size_diff
        print("\n### by file of the allocating line (top 15)")
        for where, size in sorted(by_file.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {size / n:8,.0f}  {where}")
        types0, types = info0["types"], info["types"]
        grown = {t: types.get(t, 0) - types0.get(t, 0) for t in set(types) | set(types0)}
        print("\n### objects tracked by the GC, per connection (top 25 by count)")
        for t, c in sorted(grown.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {c / n:6.2f}  {t}")
        tasks0, tasks = info0["tasks"], info["tasks"]
        print("\n### asyncio tasks per connection, by coroutine")
        for t in sorted(set(tasks) | set(tasks0)):
            c = tasks.get(t, 0) - tasks0.get(t, 0)
            if c:
                print(f"  {c / n:6.2f}  {t}")
