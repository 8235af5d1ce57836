"""The monitoring artefacts, checked offline: alert rules, Grafana dashboards, runbooks.

    python3 deploy/monitoring.py check --promtool PATH   # what deploy/validate.sh runs
    python3 deploy/monitoring.py write-prometheusrule     # copy the rules into the PrometheusRule
    python3 deploy/monitoring.py names                    # metric names the rules and dashboards use

``check`` fails when:
- a dashboard is not valid JSON, has no unique uid, or a panel has a query without ``expr``;
- promtool cannot parse a dashboard expression (each is wrapped as a recording rule in a
  scratch rules file, Grafana's variables replaced by plain values) or the rules file;
- the PrometheusRule (Kubernetes) and deploy/prometheus/rules/*.yml (the source) differ;
- an alert has no ``runbook_url``, or it does not name a section of docs/operations.md;
- promtool refuses deploy/prometheus/prometheus.yml (compose's scrape configuration).

Which of those names the services really export is checked against a running system by
tests/integration/test_metrics_catalogue.py (it imports this module).
Only the standard library and PyYAML (the validation venv has it).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "components" / "servicemonitor" / "prometheusrule.yaml"
RUNBOOKS = ROOT / "docs" / "operations.md"
RUNBOOK_PREFIX = "docs/operations.md#"

# Metrics that other exporters provide (not the chat services): name -> who exports it.
EXTERNAL_METRICS = {
    "up": "Prometheus (scrape status)",
    "jetstream_consumer_num_pending": "prometheus-nats-exporter -jsz=all",
    "jetstream_consumer_num_ack_pending": "prometheus-nats-exporter -jsz=all",
    "jetstream_consumer_num_redelivered": "prometheus-nats-exporter -jsz=all",
    "jetstream_stream_total_bytes": "prometheus-nats-exporter -jsz=all",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_deployment_status_replicas_unavailable": "kube-state-metrics",
    "kube_statefulset_status_replicas_ready": "kube-state-metrics",
    "kube_statefulset_replicas": "kube-state-metrics",
}

# -- PromQL: the metric names an expression selects -------------------------------------------
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")
_GRAFANA_VAR = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression as Prometheus sees it: intervals become 5m/1h, any other
    variable (used in label matchers) a regular expression that matches everything."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in ("__rate_interval", "__interval", "interval"):
            return "5m"
        if name == "__range":
            return "1h"
        return ".*"

    return _GRAFANA_VAR.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions, keywords, label names and the names
    recording rules define are for the caller to tell apart: those with a colon)."""
    text = _STRING.sub('""', grafana_to_promql(expr))
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    while _BRACES.search(text):
        text = _BRACES.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


# -- the artefacts ----------------------------------------------------------------------------
def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in rule_files():
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


def rules() -> Iterator[dict[str, Any]]:
    for group in rule_groups():
        yield from group["rules"]


def recorded_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def dashboards() -> dict[Path, dict[str, Any]]:
    return {p: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in board.get("panels", []):
        yield p
        yield from p.get("panels", [])  # a collapsed row keeps its panels inside


def dashboard_exprs(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every Prometheus query of ``board`` (panels and query
    variables)."""
    for p in panels(board):
        for t in p.get("targets", []):
            yield p.get("title", "?"), t.get("expr", "")
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            inner = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q)
            if inner:
                yield f"variable {var['name']}", inner.group(1)


def used_metric_names() -> dict[str, set[str]]:
    """metric name -> where it is used ("rules", or a dashboard file name), for every name
    the rules and dashboards select, except the ones the rules record themselves."""
    used: dict[str, set[str]] = {}
    for r in rules():
        for name in metric_names(r["expr"]):
            used.setdefault(name, set()).add("rules")
    for path, board in dashboards().items():
        for _, expr in dashboard_exprs(board):
            for name in metric_names(expr):
                used.setdefault(name, set()).add(path.name)
    for name in recorded_names():
        used.pop(name, None)
    return used


# -- checks -----------------------------------------------------------------------------------
def _promtool(promtool: str, *args: str) -> list[str]:
    r = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return [f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}"]
    return []


def check_dashboards(promtool: str) -> list[str]:
    errors: list[str] = []
    uids: dict[str, Path] = {}
    scratch: list[dict[str, str]] = []
    where: dict[str, str] = {}  # scratch rule -> the dashboard panel it comes from
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        try:
            board = json.loads(path.read_text())
        except ValueError as exc:
            errors.append(f"{path.name}: not valid JSON: {exc}")
            continue
        uid = board.get("uid")
        if not uid or uid in uids:
            errors.append(f"{path.name}: uid {uid!r} missing or also used by {uids.get(uid)}")
        uids[uid] = path
        n = 0
        for title, expr in dashboard_exprs(board):
            if not expr.strip():
                errors.append(f"{path.name}: panel {title!r} has a query without expr")
                continue
            n += 1
            record = f"dashboard:{path.stem.replace('-', '_')}:{n}"
            where[record] = f"{path.name}, panel {title!r}"
            scratch.append({"record": record, "expr": grafana_to_promql(expr)})
        if n == 0:
            errors.append(f"{path.name}: no queries")
    if not uids:
        errors.append(f"no dashboards in {DASHBOARDS_DIR}")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="dashboards-") as f:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": scratch}]}, f, sort_keys=False)
        f.flush()
        failed = _promtool(promtool, "check", "rules", f.name)
    for text in failed:
        named = sorted(set(re.findall(r"dashboard:\w+:\d+", text)), key=text.find)
        errors.append(text + "".join(f"\n  {r} is {where.get(r, '?')}" for r in named))
    return errors


def prometheusrule() -> dict[str, Any]:
    head = "".join(line for line in PROMETHEUS_RULE.read_text().splitlines(True) if line.startswith("#"))
    return {"head": head, "doc": yaml.safe_load(PROMETHEUS_RULE.read_text())}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as they are written in the rules."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def write_prometheusrule() -> None:
    current = prometheusrule()
    doc = current["doc"]
    doc["spec"] = {"groups": rule_groups()}
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)
    PROMETHEUS_RULE.write_text(current["head"] + body)


def check_prometheusrule() -> list[str]:
    groups = prometheusrule()["doc"].get("spec", {}).get("groups")
    if groups != rule_groups():
        return [
            f"{PROMETHEUS_RULE.relative_to(ROOT)} differs from {RULES_DIR.relative_to(ROOT)}/*.yml: "
            "run python3 deploy/monitoring.py write-prometheusrule"
        ]
    return []


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors of ``markdown``."""
    out = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def check_runbooks() -> list[str]:
    errors = []
    known = anchors(RUNBOOKS.read_text())
    for r in rules():
        if "alert" not in r:
            continue
        url = r.get("annotations", {}).get("runbook_url", "")
        if not url.startswith(RUNBOOK_PREFIX):
            errors.append(f"alert {r['alert']}: runbook_url must be {RUNBOOK_PREFIX}<section>, not {url!r}")
        elif url[len(RUNBOOK_PREFIX) :] not in known:
            errors.append(f"alert {r['alert']}: {url} names no section of docs/operations.md")
    return errors


def check(promtool: str) -> list[str]:
    errors = _promtool(promtool, "check", "rules", *map(str, rule_files()))
    errors += _promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    errors += check_dashboards(promtool)
    errors += check_prometheusrule()
    errors += check_runbooks()
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--promtool", default="promtool")
    sub.add_parser("write-prometheusrule")
    sub.add_parser("names")
    args = ap.parse_args(argv)
    if args.cmd == "write-prometheusrule":
        write_prometheusrule()
        return 0
    if args.cmd == "names":
        for name, where in sorted(used_metric_names().items()):
            print(name, " ".join(sorted(where)))
        return 0
    errors = check(args.promtool)
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    n_rules = sum(1 for _ in rules())
    print(f"{n_rules} rules, {len(dashboards())} dashboards: {'FAILED' if errors else 'ok'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
