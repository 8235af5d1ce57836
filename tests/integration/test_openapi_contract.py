"""``/openapi.json`` says what the gateway really does, checked the way app developers'
tools will: Schemathesis (``schemathesis run …/openapi.json --checks all``: coverage,
fuzzing and stateful phases) against a real cluster finds nothing. Every status and content
type is documented, problem bodies have the response's ``status`` and ``title``,
schema-valid requests are accepted (``schemathesis.toml`` lists the rules JSON Schema cannot
express), schema-invalid ones refused, undeclared methods answered 405 with ``Allow``.

The cluster runs without rate limits (the run reaches the handlers, not 429s), and the run
is seeded with real resources — a channel, a group and a dm of the caller's with a message
each, another user, an upload — which path parameters take half of the time, so the checks reach
existing conversations, messages and members too, not only 404s."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from helpers.chat_client import Api

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Writes (GATEWAY_RATE_WRITE_*) and uploads (MEDIA_RATE_*) are unlimited too.
ENV = {**NO_RATE_LIMITS, "GATEWAY_RATE_WRITE_BURST": "0", "MEDIA_RATE_BURST": "0"}
MAX_EXAMPLES, SEED, BUDGET_S = 15, 20261206, 150


def _seeded(config: str, values: dict[str, list[str]]) -> str:
    """The repository's configuration plus a dictionary per path parameter, used half of the time."""
    out = [config]
    for name, entries in values.items():
        out.append(f"\n[dictionaries.{name}]\nvalues = {json.dumps(entries)}\n")
    out.append("\n[parameters]\n")
    out += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}\n' for name in values]
    return "".join(out)


async def test_schemathesis_finds_nothing(cluster: ClusterFactory, tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        msg = f"{SCHEMATHESIS} is missing (make install: DEV_DEPS)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    c = cluster(media=True, search=True, env=ENV)
    async with Api(c.gateway_url) as api:
        me, peer = await api.register_login("contract"), await api.register_login("peer")
        channel = (await api.create(me, "channel", name=f"contract-{me.id[:8]}"))["id"]
        group = (await api.create(me, "group", [peer]))["id"]
        dm = (await api.create(me, "dm", [peer]))["id"]
        for conv in (channel, group, dm):
            assert (await api.send(me, conv, "hello")).status_code == 201
        r = await api.http.post("/v1/media", headers=me.headers, files={"file": ("a.txt", b"some text")})
        assert r.status_code == 201, r.text
        document = (await api.http.get("/openapi.json")).json()
    operations = sum(len(item) for item in document["paths"].values())
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        _seeded(
            CONFIG.read_text(),
            {"conv": [channel, group, dm], "seq": ["1"], "user_id": [peer.id], "media_id": [r.json()["media_id"]]},
        )
    )
    args = [
        *("--config-file", str(config), "run", f"{c.gateway_url}/openapi.json", "--checks", "all"),
        *("--header", f"Authorization: Bearer {me.access_token}"),
        *("--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", str(SEED)),
        *("--generation-database", "none", "--no-color"),
    ]
    # cwd: a scratch directory, so nothing (reports, caches) lands in the repository
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), BUDGET_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    report = out.decode(errors="replace")
    print(report[report.rfind("WARNINGS") :])
    assert proc.returncode == 0, report[-12000:]
    summary = report[report.rfind("SUMMARY") :]
    assert f"Tested: {operations}" in summary and " passed" in summary, summary
