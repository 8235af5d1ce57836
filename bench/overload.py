"""Overload benchmark (hardening §6): offered twice the capacity, the system keeps latency
bounded for what it admits and refuses the rest explicitly.

In ONE run, on one system (2 gateways, the chosen backend):
1. capacity: with admission off (a system of its own), rising rates of --probe seconds
   each until the system no longer keeps up (persisted < 90 % offered); the best persisted
   rate seen is the capacity C;
2. unloaded (a fresh system, defaults): C/10 offered for --baseline seconds; its ack p99 is
   the reference; then --below x C (default 0.6) for as long: the share refused there
   (admission must not shed below capacity);
3. overload: 2 x C offered for --duration seconds (default 60); admitted share = persisted
   rate / C.
Pass: the admitted (acked) messages' p99 under 10x the unloaded p99; every send answered
(ack or refusal) within 2 s; every acked message stored at its seq (checked over REST).

    .venv/bin/python bench/overload.py --backend postgres --repeat 3

Bounded: each phase stops by itself; loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import _metric_sums, bench_system  # noqa: E402  (bench/run.py: NATS, backend, 2 gateways)

RAMP = (500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000)
NO_ADMISSION = [
    "GATEWAY_SEND_MIN_INFLIGHT=1000000",
    "GATEWAY_SEND_MAX_INFLIGHT=1000000",
    "GATEWAY_CONNECTION_MAX_INFLIGHT_SENDS=100000",
    "GATEWAY_MAX_INFLIGHT_FRAMES=200000",
]


def loadgen(urls: list[str], clients: int, rate: float, duration: float, verify: bool = False) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "loadgen.py"),
        *[a for u in urls for a in ("--gateway", u)],
        "--clients",
        str(clients),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--drain",
        "5",
    ]
    if verify:
        cmd.append("--verify")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=duration + 600)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


WATCHED = (
    "chat_gateway_sends_target_seconds",
    "chat_gateway_sends_limit",
    "chat_gateway_sends_inflight",
    "chat_gateway_sends_loop_lag_seconds",
)


class AdmissionWatch:
    """Each gateway's admission state once a second while the overload runs (a thread):
    [second, then per gateway: target ms, limit, in flight, loop lag ms]."""

    def __init__(self, cluster: Any) -> None:
        self.urls = [gw.metrics_url + "/metrics" for gw in cluster.gateways]
        self.samples: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AdmissionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(1.0) and len(self.samples) < 900:
            row: list[float] = [round(time.monotonic() - start)]
            for url in self.urls:
                try:
                    text = httpx.get(url, timeout=2).text
                except httpx.HTTPError:
                    continue
                values = _metric_sums(text, WATCHED)
                row += [
                    round(values.get(WATCHED[0], 0) * 1000),
                    round(values.get(WATCHED[1], 0)),
                    round(values.get(WATCHED[2], 0)),
                    round(values.get(WATCHED[3], 0) * 1000, 1),
                ]
            self.samples.append(row)


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    # the capacity, with admission out of the way (every send admitted): rising rates until
    # the system no longer keeps up; the best persisted rate seen. (Offering far too much at
    # once measures a collapsing system instead: the gateways drown in their own queues.)
    unbounded = argparse.Namespace(**{**vars(args), "env": [*args.env, *NO_ADMISSION]})
    capacity = args.capacity or 0.0
    with contextlib.ExitStack() if args.capacity else bench_system(unbounded) as cluster:
        for rate in () if args.capacity else RAMP:
            got = loadgen(cluster.gateway_urls, args.clients, rate, args.probe)["persisted_per_s_steady"]
            capacity = max(capacity, got)
            if got < 0.9 * rate:
                break
    with bench_system(args) as cluster:
        urls = cluster.gateway_urls
        base = loadgen(urls, args.clients, capacity / 10, args.baseline)
        # below capacity admission must not refuse: what a send costs there is the store's
        # batch cycles, not overload
        below = loadgen(urls, args.clients, args.below * capacity, args.baseline) if args.below else None
        with AdmissionWatch(cluster) as watch:
            over = loadgen(urls, args.clients, 2 * capacity, args.duration, verify=True)
    unloaded_p99 = base["ack_ms"]["p99"]
    return {
        "capacity_per_s": capacity,
        "unloaded_ack_p99_ms": unloaded_p99,
        "unloaded_refused": base["errors"].get("unavailable", 0),
        "below_share_of_capacity": args.below,
        "below_refused_share": round(below["errors"].get("unavailable", 0) / below["sent"], 4) if below else None,
        "below_ack_p99_ms": below["ack_ms"]["p99"] if below else None,
        "offered_per_s": round(2 * capacity),
        "admitted_per_s": over["persisted_per_s_steady"],
        "admitted_share_of_capacity": round(over["persisted_per_s_steady"] / capacity, 2) if capacity else None,
        "admitted_ack_p50_ms": over["ack_ms"]["p50"],
        "admitted_ack_p99_ms": over["ack_ms"]["p99"],
        "p99_ratio": round(over["ack_ms"]["p99"] / unloaded_p99, 2) if unloaded_p99 else None,
        "sent": over["sent"],
        "acked": over["acked"],
        "refused": over["errors"].get("unavailable", 0),
        "other_errors": {k: v for k, v in over["errors"].items() if k != "unavailable"},
        "unanswered": over["sent"] - over["answered"],
        "answered_after_2s": over["answered"] - over["answered_within_2s"],
        "answer_max_ms": over["answer_ms"]["max"],
        "acked_not_stored": over["acked_not_stored"],
        "ack_ms_by_second": over["ack_ms_by_second"],
        "admission_by_second": watch.samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60, help="seconds at 2x capacity (max 600)")
    ap.add_argument("--probe", type=float, default=8, help="seconds of each step of the capacity ramp")
    ap.add_argument("--baseline", type=float, default=15, help="seconds at capacity/10 (and at --below)")
    ap.add_argument("--below", type=float, default=0.6, help="then this share of capacity for --baseline s (0: skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--capacity", type=float, default=0, help="skip the ramp: take this capacity (exploring only)")
    ap.add_argument("--messages-replicas", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--pg-log-slow-ms", type=int, default=None)
    ap.add_argument("--with-search-media", action="store_true", help="also run the search and media services")
    args = ap.parse_args()
    args.duration = min(args.duration, 600)
    runs = []
    for _ in range(args.repeat):
        r = one_run(args)
        runs.append(r)
        print(json.dumps(r), flush=True)
    keys = (
        "capacity_per_s",
        "unloaded_ack_p99_ms",
        "admitted_per_s",
        "admitted_share_of_capacity",
        "admitted_ack_p50_ms",
        "admitted_ack_p99_ms",
        "p99_ratio",
        "answer_max_ms",
    )
    med = {k: statistics.median(r[k] for r in runs if r[k] is not None) for k in keys}
    med |= {k: sum(r[k] for r in runs) for k in ("unanswered", "answered_after_2s", "acked_not_stored")}
    if args.below:
        med["below_refused_share"] = statistics.median(r["below_refused_share"] for r in runs)
    med["pass"] = bool(
        med["p99_ratio"] <= 10
        and med["unanswered"] == 0
        and med["answered_after_2s"] == 0
        and med["acked_not_stored"] == 0
    )
    print("MEDIANS " + json.dumps({"backend": args.backend, "runs": len(runs), **med}), flush=True)


if __name__ == "__main__":
    main()
