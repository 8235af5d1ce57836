"""Bad input at volume, short profile (hardening §7; the million-frame run is bench/fuzz.py).

Mutated and random frames over several connections and mutated requests to every route of
the gateway's OpenAPI document, while two users exchange valid messages: no 5xx, no
``internal`` error, no process restarted, gateway memory flat, and the valid traffic
delivered exactly once and in order (chat_devtools.fuzz)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chat_devtools.fuzz import FuzzReport, ValidTraffic, fuzz_frames, fuzz_rest
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from helpers.chat_client import Api

CONNECTIONS, FRAMES, REQUESTS, VALID = 3, 1500, 600, 60


def rss_mib(pid: int | None) -> float:
    assert pid is not None
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def test_fuzz_short_profile(cluster: ClusterFactory) -> None:
    c = cluster(gateways=1, media=True, search=True, env=NO_RATE_LIMITS)  # it fuzzes every route
    pids = [p.pid for p in c.processes]
    gw = c.gateways[0]
    async with Api(c.gateway_url) as api:
        alice, bob = await api.register_login("alice"), await api.register_login("bob")
        dm = (await api.create(alice, "dm", [bob]))["id"]
        fuzzers = [await api.register_login(f"fz{i}") for i in range(CONNECTIONS)]
        group = (await api.create(fuzzers[0], "group", fuzzers[1:]))["id"]
        openapi = (await api.http.get("/openapi.json")).json()
    convs = [group, dm, "nosuchconv"]
    report = FuzzReport()
    await fuzz_frames(c.ws_urls[0], fuzzers[0].access_token, convs, 300, seed=99, report=report)  # warm-up
    rss0 = rss_mib(gw.pid)
    valid = ValidTraffic()
    await asyncio.gather(
        *(
            fuzz_frames(c.ws_urls[0], f.access_token, convs, FRAMES, seed=i, report=report)
            for i, f in enumerate(fuzzers)
        ),
        fuzz_rest(c.gateway_url, fuzzers[0].access_token, openapi, convs, REQUESTS, seed=7, report=report),
        valid.run(c.ws_urls[0], {alice.id: alice.access_token, bob.id: bob.access_token}, dm, VALID),
    )
    rss1 = rss_mib(gw.pid)
    print(
        f"\nframes {report.frames}, requests {report.requests}, statuses {dict(report.statuses)}, "
        f"errors {dict(report.errors)}, closes {dict(report.closes)}, gateway RSS {rss0:.0f} -> {rss1:.0f} MiB"
    )
    assert report.problems == [], report.problems
    assert report.frames >= CONNECTIONS * FRAMES + 300 and report.requests >= REQUESTS * 0.95
    assert valid.problems() == [], valid.problems()
    assert len(valid.acked[alice.id]) == len(valid.acked[bob.id]) == VALID
    assert c.dead() == [] and [p.pid for p in c.processes] == pids  # nothing crashed or restarted
    assert rss1 - rss0 < 64, (rss0, rss1)
