"""Checks of a rendered overlay that a schema cannot make (deploy/validate.sh runs it):

    python3 deploy/check_manifests.py RENDERED.yaml [--prod]

- NetworkPolicies: the edges they allow, resolved (pod -> pod needs the source's egress
  and the destination's ingress; outside peers — ingress controller, monitoring, kube-dns,
  the stores — one side), are exactly the list of docs/operations.md ("Network policies"),
  with a default deny on every pod;
- every container: non-root, read-only root filesystem, no privilege escalation, all
  capabilities dropped, requests and limits, readiness and liveness probes;
- every workload has a PodDisruptionBudget; with --prod, HPAs for gateway, messages and
  search and 3 NATS servers;
- every Secret key a workload reads is in a template under deploy/k8s/secrets/.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ["auth", "messages", "presence", "media", "search", "gateway"]
METRICS_PORT = {"auth": 8081, "messages": 8082, "presence": 8083, "media": 8084, "search": 8085, "gateway": 9464}
STORE_PORTS = {5432: "postgresql", 443: "s3", 9000: "s3", 9200: "opensearch"}


def expected_edges() -> set[str]:
    e = {"ingress-controller -> gateway:8080", "ingress-controller -> web:8080", "gateway -> media:8084"}
    e |= {f"{s} -> nats:4222" for s in SERVICES}
    e |= {"nats -> nats:6222", "monitoring -> nats:7777"}
    e |= {f"{s} -> kube-dns:53/{p}" for s in [*SERVICES, "nats"] for p in ("UDP", "TCP")}
    e |= {f"monitoring -> {s}:{port}" for s, port in METRICS_PORT.items()}
    e |= {f"{s} -> postgresql:5432" for s in ("auth", "messages", "presence", "media")}
    e |= {"media -> s3:443", "media -> s3:9000", "search -> opensearch:9200"}
    return e


def _short(name: str) -> str:
    return name.removeprefix("chat-")


def _pods(selector: dict[str, Any], all_pods: list[str]) -> list[str]:
    """Pod names (app.kubernetes.io/name without chat-) a podSelector picks."""
    if not selector:
        return list(all_pods)
    picked = list(all_pods)
    for k, v in selector.get("matchLabels", {}).items():
        assert k == "app.kubernetes.io/name", f"unexpected pod label {k}"
        picked = [p for p in picked if f"chat-{p}" == v]
    for expr in selector.get("matchExpressions", []):
        assert expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In", expr
        picked = [p for p in picked if f"chat-{p}" in expr["values"]]
    return picked


def _peer(peer: dict[str, Any], all_pods: list[str], port: int) -> list[str]:
    if "ipBlock" in peer:
        return [STORE_PORTS.get(port, f"ip:{peer['ipBlock']['cidr']}")]
    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
    if ns is None and "namespaceSelector" in peer:
        return ["any-namespace"]
    if ns == "ingress-nginx":
        return ["ingress-controller"]
    if ns == "monitoring":
        return ["monitoring"]
    if ns == "kube-system" and peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns":
        return ["kube-dns"]
    if ns is not None:
        return [f"namespace:{ns}"]
    return _pods(peer.get("podSelector", {}), all_pods)


def _rules(policy: dict[str, Any], direction: str) -> Iterator[tuple[list[dict[str, Any]] | None, int, str]]:
    key = "to" if direction == "egress" else "from"
    for rule in policy["spec"].get(direction, []):
        for p in rule.get("ports") or [{"port": "any", "protocol": "TCP"}]:
            yield rule.get(key), p["port"], p.get("protocol", "TCP")


def _port(port: int | str, proto: str) -> str:
    return f"{port}/UDP" if proto == "UDP" else f"{port}/TCP" if port == 53 else str(port)


def _denies_all(spec: dict[str, Any]) -> bool:
    both = set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}
    return spec["podSelector"] == {} and both and not spec.get("ingress") and not spec.get("egress")


def policy_edges(docs: list[dict[str, Any]]) -> tuple[set[str], list[str]]:
    errors: list[str] = []
    pods = [_short(d["metadata"]["name"]) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if _denies_all(p["spec"])]
    if not deny:
        errors.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    egress: set[tuple[str, str, str]] = set()  # (from, to, port)
    ingress: set[tuple[str, str, str]] = set()
    for pol in policies:
        selected = _pods(pol["spec"]["podSelector"], pods)
        for peers, port, proto in _rules(pol, "egress"):
            targets = ["anywhere"] if peers is None else [t for peer in peers for t in _peer(peer, pods, port)]
            if peers is None:
                targets = [STORE_PORTS.get(port, "anywhere")] if isinstance(port, int) else ["anywhere"]
            egress |= {(s, t, _port(port, proto)) for s in selected for t in targets}
        for peers, port, proto in _rules(pol, "ingress"):
            sources = ["anywhere"] if peers is None else [t for peer in peers for t in _peer(peer, pods, port)]
            ingress |= {(s, d, _port(port, proto)) for d in selected for s in sources}
    edges: set[str] = set()
    for src, dst, where in egress:
        # inside the namespace the destination must admit it too
        if dst not in pods or (src, dst, where) in ingress:
            edges.add(f"{src} -> {dst}:{where}")
    edges |= {f"{src} -> {dst}:{where}" for src, dst, where in ingress if src not in pods}
    return edges, errors


def _containers(d: dict[str, Any]) -> list[dict[str, Any]]:
    spec = d["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def check_workloads(docs: list[dict[str, Any]], prod: bool) -> list[str]:
    errors = []
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    pdbs = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    for d in workloads:
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot") or not psc.get("runAsUser"):
            errors.append(f"{name}: pod securityContext without runAsNonRoot and runAsUser")
        if pod.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: automountServiceAccountToken is not false")
        if name not in pdbs:
            errors.append(f"{name}: no PodDisruptionBudget")
        for c in _containers(d):
            where = f"{name}/{c['name']}"
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem"):
                errors.append(f"{where}: root filesystem not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                errors.append(f"{where}: capabilities not dropped")
            res = c.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
                errors.append(f"{where}: requests (cpu, memory) and a memory limit are needed")
            if "readinessProbe" not in c or "livenessProbe" not in c:
                errors.append(f"{where}: readiness and liveness probes are needed")
    if prod:
        hpas = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
        for want in ("chat-gateway", "chat-messages", "chat-search"):
            if want not in hpas:
                errors.append(f"no HorizontalPodAutoscaler for {want}")
        nats = [d for d in workloads if d["metadata"]["name"] == "chat-nats"]
        if not nats or nats[0]["spec"].get("replicas") != 3:
            errors.append("chat-nats: not a StatefulSet of 3 servers")
    return errors


def check_secret_templates(docs: list[dict[str, Any]]) -> list[str]:
    templates: dict[str, set[str]] = {}
    for path in (ROOT / "deploy" / "k8s" / "secrets").glob("*.example.yaml"):
        t = yaml.safe_load(path.read_text())
        templates[t["metadata"]["name"]] = set(t.get("stringData", {}))
    errors = []
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in _containers(d):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in templates.get(ref["name"], set()):
                    errors.append(f"{d['metadata']['name']}: Secret {ref['name']} key {ref['key']} has no template")
    return errors


def main(argv: list[str]) -> int:
    prod = "--prod" in argv
    paths = [a for a in argv if not a.startswith("--")]
    errors: list[str] = []
    for path in paths:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        edges, errs = policy_edges(docs)
        errs += check_workloads(docs, prod)
        errs += check_secret_templates(docs)
        want = expected_edges()
        if edges != want:
            errs += [f"NetworkPolicy edge not allowed but expected: {e}" for e in sorted(want - edges)]
            errs += [f"NetworkPolicy edge allowed but not expected: {e}" for e in sorted(edges - want)]
        errors += [f"{Path(path).name}: {e}" for e in errs]
        print(f"{Path(path).name}: {len(edges)} network edges, {'FAILED' if errs else 'ok'}")
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
