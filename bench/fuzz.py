"""Bad input at volume, long profile (hardening §7): a million fuzz frames and requests.

Starts its own system (bench/run.py's: NATS with accounts, the backend, 2 gateways, send
limits off), then sends --frames mutated and random frames over --connections sockets
(spread over both gateways) and --requests mutated REST requests (every route of the
OpenAPI document), while two users exchange valid messages the whole time. Reports, and
fails (exit 1) unless: no 5xx and no 400, problem bodies' status right, no ``internal``
error frame, no process restarted, each gateway's memory flat (last sample minus the one
after the warm-up < --max-growth-mib), the valid traffic delivered exactly once and in
order. Frames come from a pool of --pool distinct ones per connection.

    .venv/bin/python bench/fuzz.py --frames 1000000 --requests 50000

Bounded by its counts; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from chat_devtools.fuzz import FuzzReport, ValidTraffic, fuzz_frames, fuzz_rest  # noqa: E402
from run import bench_system, rss_kib  # noqa: E402

PASSWORD = "bench-password-1"


async def user(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await http.post("/v1/auth/register", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return dict(r.json())


def token_source(base_url: str, name: str, first: str, max_age_s: float = 600.0) -> Callable[[], Awaitable[str]]:
    """A current access token of ``name``: the one given, then a fresh login every
    ``max_age_s`` (tokens live 15 minutes; this run lasts longer)."""
    held = {"token": first, "at": time.monotonic()}

    async def get() -> str:
        if time.monotonic() - held["at"] > max_age_s:  # type: ignore[operator]
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
                r.raise_for_status()
            held["token"], held["at"] = r.json()["access_token"], time.monotonic()
        return str(held["token"])

    return get


async def bench(urls: list[str], pids: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    ws = [u.replace("http://", "ws://") + "/ws" for u in urls]
    tag = str(int(time.time()))[-6:]
    async with httpx.AsyncClient(base_url=urls[0], timeout=60) as http:
        alice, bob = await user(http, f"a{tag}"), await user(http, f"b{tag}")
        h = {"Authorization": f"Bearer {alice['access_token']}"}
        r = await http.post("/v1/conversations", headers=h, json={"kind": "dm", "members": [bob["user"]["id"]]})
        dm = r.json()["id"]
        fuzzers = [await user(http, f"f{tag}{i}") for i in range(args.connections)]
        hf = {"Authorization": f"Bearer {fuzzers[0]['access_token']}"}
        group = (
            await http.post(
                "/v1/conversations",
                headers=hf,
                json={
                    "kind": "channel",
                    "name": f"fuzz {tag}",
                    "private": True,
                    "members": [f["user"]["id"] for f in fuzzers[1:]],
                },
            )
        ).json()["id"]
        openapi = (await http.get("/openapi.json")).json()
    # a tenth of the frames that name a conversation name the fuzzers' own (their sends are
    # stored: the store's pace would otherwise set the benchmark's), the rest others' or none
    convs = [group] + [dm, "nosuchconv"] * 5
    report = FuzzReport()
    per_conn = args.frames // args.connections
    await fuzz_frames(ws[0], fuzzers[0]["access_token"], convs, 2000, 999, report, pool=500)  # warm-up
    rss: dict[str, list[int]] = {k: [rss_kib(p)] for k, p in pids.items() if k.startswith("gateway")}
    valid = ValidTraffic()
    t0 = time.monotonic()
    sampling = True

    async def sample() -> None:
        while sampling:
            await asyncio.sleep(10)
            for k in rss:
                rss[k].append(rss_kib(pids[k]))

    sampler = asyncio.create_task(sample())
    n_valid = max(10, int(args.expected_s / args.valid_pace))
    await asyncio.gather(
        *(
            fuzz_frames(
                ws[i % len(ws)],
                token_source(urls[0], f["user"]["username"], f["access_token"]),
                convs,
                per_conn,
                i,
                report,
                pool=args.pool,
                closing_share=args.closing_share,
            )
            for i, f in enumerate(fuzzers)
        ),
        *(
            fuzz_rest(
                urls[i % len(urls)],
                token_source(urls[0], fuzzers[i]["user"]["username"], fuzzers[i]["access_token"]),
                openapi,
                convs,
                args.requests // 2,
                100 + i,
                report,
            )
            for i in range(2)
        ),
        valid.run(
            ws[0],
            {u["user"]["id"]: token_source(urls[0], u["user"]["username"], u["access_token"]) for u in (alice, bob)},
            dm,
            n_valid,
            within=args.expected_s * 4 + 600,
            pace_s=args.valid_pace,
        ),
    )
    elapsed = time.monotonic() - t0
    sampling = False
    sampler.cancel()
    for k in rss:
        rss[k].append(rss_kib(pids[k]))
    growth = {k: round((v[-1] - v[0]) / 1024, 1) for k, v in rss.items()}
    return {
        "frames": report.frames,
        "requests": report.requests,
        "seconds": round(elapsed, 1),
        "frames_per_s": round(report.frames / elapsed),
        "statuses": dict(report.statuses),
        "error_frames": dict(report.errors),
        "closes": {str(k): v for k, v in report.closes.items()},
        "problems": report.problems,
        "valid_sent": sum(len(v) for v in valid.acked.values()),
        "valid_problems": valid.problems(),
        "gateway_rss_mib": {k: [round(x / 1024) for x in v] for k, v in rss.items()},
        "gateway_rss_growth_mib": growth,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=50_000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--pool", type=int, default=2_000)
    ap.add_argument("--closing-share", type=float, default=0.01, help="share of frames that close the connection")
    ap.add_argument("--valid-pace", type=float, default=0.05, help="seconds between a valid user's sends")
    ap.add_argument("--expected-s", type=float, default=300, help="how long the run is expected to take")
    ap.add_argument("--max-growth-mib", type=float, default=64)
    ap.add_argument("--messages-replicas", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--pg-log-slow-ms", type=int, default=None)
    args = ap.parse_args()
    args.frames = min(args.frames, 20_000_000)
    args.env = [*args.env, "GATEWAY_RATE_WRITE_BURST=0"]  # REST writes at volume: the write budget off
    args.with_search_media = True  # every service of the stack is fuzzed
    with bench_system(args) as cluster:
        before = {p.name: p.pid or 0 for p in cluster.processes}
        res = asyncio.run(bench(cluster.gateway_urls, {k.replace("-", ""): v for k, v in before.items()}, args))
        after = {p.name: p.pid or 0 for p in cluster.processes}
        res["restarted_or_dead"] = [n for n in before if before[n] != after[n]] + [p.name for p in cluster.dead()]
    res["pass"] = not (
        res["problems"]
        or res["valid_problems"]
        or res["restarted_or_dead"]
        or any(g > args.max_growth_mib for g in res["gateway_rss_growth_mib"].values())
    )
    print(json.dumps(res), flush=True)
    sys.exit(0 if res["pass"] else 1)


if __name__ == "__main__":
    main()
