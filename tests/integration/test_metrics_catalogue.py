"""Every metric the dashboards and alert rules use is exported by some service.

A cluster with every service (media and search included) runs a short workload — register,
a WebSocket, messages, an upload, a search — then each process's ``/metrics`` is scraped and
the names the rules (deploy/prometheus/rules) and the Grafana dashboards
(deploy/grafana/dashboards) select are looked up in what was exported. Names of other
exporters (prometheus-nats-exporter, kube-state-metrics, Prometheus' ``up``) are listed in
deploy/monitoring.py with who exports them; names the rules record themselves are skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
import uuid
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from chat_common.runtime_metrics import LoopLagMonitor
from chat_devtools.testing import NO_RATE_LIMITS, ClusterFactory
from helpers import media as corpus
from helpers.chat_client import Api, Ws
from helpers.peer import users
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"), "counter": ("_total",)}


def load_monitoring() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_deploy_monitoring", ROOT / "deploy" / "monitoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


monitoring = load_monitoring()


def exported_names(text: str) -> dict[str, float]:
    """Every series name a scrape of ``text`` offers (a histogram ``x`` gives ``x_bucket``,
    ``x_sum``, ``x_count``; a counter ``x`` gives ``x_total``), with the sum of its samples."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            out.setdefault(family.name + suffix, 0.0)
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def missing(used: dict[str, set[str]], exported: set[str]) -> dict[str, list[str]]:
    """Used names that neither a service nor a listed outside exporter provides."""
    return {n: sorted(w) for n, w in used.items() if n not in exported and n not in monitoring.EXTERNAL_METRICS}


def test_an_unknown_metric_in_a_dashboard_is_reported() -> None:
    used = {
        n: {"a.json"} for n in monitoring.metric_names('sum(rate(chat_made_up_total{job=~"$job"}[$__rate_interval]))')
    }
    used |= {
        n: {"a.json"}
        for n in monitoring.metric_names("histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m])))")
    }
    exported = exported_names("# TYPE x_seconds summary\nx_seconds_sum 1\nx_seconds_count 1\n")
    # a summary has no buckets: x_seconds_bucket is as unknown as the made-up counter
    assert missing(used, set(exported)) == {"chat_made_up_total": ["a.json"], "x_seconds_bucket": ["a.json"]}
    assert monitoring.metric_names('up{job="chat-gateway"} == 0 and on (job) kube_x offset 5m') == {"up", "kube_x"}


async def test_every_metric_of_the_dashboards_and_alerts_is_exported(cluster: ClusterFactory) -> None:
    c = cluster(media=True, search=True, env={**NO_RATE_LIMITS, "MEDIA_RATE_BURST": "0"})
    tag = uuid.uuid4().hex[:10]
    async with Api(c.gateway_url) as api:
        alice, bob = await users(api, "alice", "bob")
        conv = (await api.create(alice, "dm", [bob]))["id"]
        ws = await Ws.connect(c.ws_urls[0], bob.access_token)
        try:
            for i in range(3):
                r = await api.send(alice, conv, f"catalogue{tag} message {i}")
                assert r.status_code == 201, r.text
            await ws.expect("event")  # fanout to a connection
        finally:
            await ws.close()
        r = await api.http.post(
            "/v1/media", files={"file": ("p.png", corpus.png(), "image/png")}, headers=alice.headers
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 15
        while True:  # indexing is asynchronous
            r = await api.http.get("/v1/search", params={"q": f"catalogue{tag}"}, headers=alice.headers)
            assert r.status_code == 200, r.text
            if r.json()["hits"]:
                break
            assert time.monotonic() < deadline, "the messages never became searchable"
            await asyncio.sleep(0.1)

    # Every process measures its event loop, once per monitor interval after it started: on
    # a fast machine the workload above can end before a process's first measure.
    scraped: dict[str, dict[str, float]] = {}
    deadline = time.monotonic() + 20 * LoopLagMonitor().interval
    async with httpx.AsyncClient(timeout=10) as http:
        for p in c.processes:
            while True:
                r = await http.get(f"{p.metrics_url}/metrics")
                assert r.status_code == 200, (p.name, r.status_code)
                scraped[p.name] = exported_names(r.text)
                if scraped[p.name].get("chat_event_loop_lag_seconds_count", 0) > 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)

    exported = set().union(*scraped.values())
    gaps = missing(monitoring.used_metric_names(), exported)
    assert not gaps, f"used by a dashboard or rule (where), exported by no service: {gaps}"
    assert not set(monitoring.EXTERNAL_METRICS) & exported, "listed as another exporter's, but a service exports it"
    # every process measures its event loop; the workload reached the write path and search
    for name, names in scraped.items():
        assert names.get("chat_event_loop_lag_seconds_count", 0) > 0, name
    assert sum(n.get("chat_gateway_send_seconds_count", 0) for n in scraped.values()) >= 3
    assert sum(n.get("chat_search_index_lag_seconds_count", 0) for n in scraped.values()) >= 3


@pytest.mark.parametrize("board", sorted(p.name for p in monitoring.DASHBOARDS_DIR.glob("*.json")))
def test_each_dashboard_has_queries(board: str) -> None:
    exprs = list(monitoring.dashboard_exprs(monitoring.dashboards()[monitoring.DASHBOARDS_DIR / board]))
    assert exprs and all(e.strip() for _, e in exprs)
