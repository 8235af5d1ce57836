"""What a page's long tasks were made of, from a Chromium performance trace (the JSON that
Playwright's ``browser.start_tracing`` or the DevTools Performance panel writes).

    .venv/bin/python bench/web_trace.py /tmp/trace/run-1.json

For the renderer main thread with the most events: every task over 50 ms (``RunTask``), the
trace events inside it by self time (``Layout``, ``UpdateLayoutTree``, ``MinorGC``,
``FunctionCall`` …), and — when the V8 sampling profiler was on
(``disabled-by-default-v8.cpu_profiler``) — the JavaScript functions that the samples taken
inside long tasks were in (self time; the app's production bundle is minified, so a function
is named by its chunk and position). ``bench/web_stream.py --trace DIR`` uses it.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

TRACE_CATEGORIES = [
    "toplevel",
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "blink",
    "v8",
    "v8.execute",
    "disabled-by-default-v8.gc",
]
# The V8 sampling profiler: which functions the time went to, at a cost (tasks run ~1.5-2x longer).
JS_SAMPLES = "disabled-by-default-v8.cpu_profiler"
LONG_US = 50_000
TASK_NAMES = {"RunTask", "ThreadControllerImpl::RunTask"}


def _events(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    events: list[dict[str, Any]] = data["traceEvents"] if isinstance(data, dict) else data
    return events


def _main_thread(events: list[dict[str, Any]]) -> tuple[int, int]:
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    counts = Counter((e.get("pid"), e.get("tid")) for e in events if (e.get("pid"), e.get("tid")) in mains)
    if not counts:
        raise ValueError("no renderer main thread in this trace")
    return counts.most_common(1)[0][0]  # type: ignore[return-value]


def _spans(events: list[dict[str, Any]], pid: int, tid: int) -> list[tuple[int, int, str]]:
    """(start, end, name) of the thread's complete events, B/E pairs matched."""
    out: list[tuple[int, int, str]] = []
    open_: dict[str, list[int]] = defaultdict(list)
    for e in sorted((e for e in events if e.get("pid") == pid and e.get("tid") == tid), key=lambda e: e.get("ts", 0)):
        ph = e.get("ph")
        if ph == "X" and "dur" in e:
            out.append((e["ts"], e["ts"] + e["dur"], e["name"]))
        elif ph == "B":
            open_[e["name"]].append(e["ts"])
        elif ph == "E" and open_[e["name"]]:
            out.append((open_[e["name"]].pop(), e["ts"], e["name"]))
    out.sort(key=lambda s: (s[0], -s[1]))
    return out


def _self_times(spans: list[tuple[int, int, str]]) -> Counter[str]:
    """Self time by name of properly nested spans (a span's time minus its children's)."""
    selfs: Counter[str] = Counter()
    stack: list[list[Any]] = []  # [end, name, child_time, start]
    for start, end, name in spans:
        while stack and stack[-1][0] <= start:
            done = stack.pop()
            selfs[done[1]] += done[0] - done[3] - done[2]
        if stack:
            end = min(end, stack[-1][0])
            stack[-1][2] += end - start
        stack.append([end, name, 0, start])
    while stack:
        done = stack.pop()
        selfs[done[1]] += done[0] - done[3] - done[2]
    return selfs


def _samples(events: list[dict[str, Any]], pid: int, tid: int) -> list[tuple[int, str]]:
    """(time µs, "function chunk:line:col") of every V8 CPU sample taken on the thread."""
    nodes: dict[Any, str] = {}
    out: list[tuple[int, str]] = []
    starts: dict[Any, int] = {}
    last: dict[Any, int] = {}
    for e in sorted(events, key=lambda e: e.get("ts", 0)):
        if e.get("pid") != pid:
            continue
        if e.get("name") == "Profile":
            starts[e.get("id")] = e["args"]["data"].get("startTime", e["ts"])
            continue
        if e.get("name") != "ProfileChunk":
            continue
        pid_key = e.get("id")
        data = e["args"]["data"]
        prof = data.get("cpuProfile", {})
        for n in prof.get("nodes", []):
            cf = n.get("callFrame", {})
            url = cf.get("url", "").rsplit("/", 1)[-1]
            where = f" {url}:{cf.get('lineNumber', 0) + 1}:{cf.get('columnNumber', 0) + 1}" if url else ""
            nodes[(pid_key, n["id"])] = f"{cf.get('functionName') or '(anonymous)'}{where}"
        t = last.get(pid_key, starts.get(pid_key, e["ts"]))
        for node, delta in zip(prof.get("samples", []), data.get("timeDeltas", []), strict=False):
            t += delta
            out.append((t, nodes.get((pid_key, node), "?")))
        last[pid_key] = t
    return out


def long_task_report(path: Path, top: int = 15) -> str:
    events = _events(path)
    pid, tid = _main_thread(events)
    spans = _spans(events, pid, tid)
    tasks: list[tuple[int, int, str]] = []
    for span in spans:  # outermost tasks only (a RunTask can nest another)
        if span[2] in TASK_NAMES and span[1] - span[0] > LONG_US and not (tasks and span[1] <= tasks[-1][1]):
            tasks.append(span)
    lines = [f"{path.name}: {len(tasks)} tasks over 50 ms on the renderer main thread"]
    if not tasks:
        return lines[0]
    lines.append("  durations ms: " + ", ".join(str(round((e - s) / 1000)) for s, e, _ in tasks))
    inside: Counter[str] = Counter()
    for s, e, _ in tasks:
        inside += _self_times([x for x in spans if x[0] >= s and x[1] <= e])
    total = sum(e - s for s, e, _ in tasks)
    lines.append(f"  trace events by self time inside them ({total / 1000:.0f} ms in all):")
    for name, us in inside.most_common(top):
        lines.append(f"    {us / 1000:8.1f} ms  {name}")
    for s, e, _ in sorted(tasks, key=lambda t: t[0] - t[1])[:3]:
        own = _self_times([x for x in spans if x[0] >= s and x[1] <= e]).most_common(6)
        parts = ", ".join(f"{name} {us / 1000:.0f}" for name, us in own)
        lines.append(f"  the {(e - s) / 1000:.0f} ms task at {(s - spans[0][0]) / 1e6:.1f} s: {parts} (ms)")
    samples = _samples(events, pid, tid)
    if samples:
        fns: Counter[str] = Counter()
        samples.sort()
        times = [t for t, _ in samples]
        for s, e, _ in tasks:
            for i in range(bisect.bisect_left(times, s), bisect.bisect_right(times, e)):
                fns[samples[i][1]] += min(times[i + 1], e) - times[i] if i + 1 < len(times) else 0
        lines.append("  JavaScript (V8 samples) by self time inside them:")
        for fn, us in fns.most_common(top):
            lines.append(f"    {us / 1000:8.1f} ms  {fn}")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    for p in sys.argv[1:]:
        print(long_task_report(Path(p)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
