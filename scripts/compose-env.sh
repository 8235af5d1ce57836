#!/usr/bin/env bash
# `make compose-env`: write .env for docker-compose with fresh random secrets — the NATS
# users' passwords, PostgreSQL's superuser and each service's database password, the media
# service's gateway token and the gateways' signed-URL key, MinIO's root credentials and
# Grafana's admin password. Nothing in docker-compose.yml has a default secret: without
# .env it refuses to start. An existing .env keeps its values and gains only what it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
touch .env
chmod 600 .env
for name in CHAT_NATS_AUTH_PASSWORD CHAT_NATS_MESSAGES_PASSWORD CHAT_NATS_PRESENCE_PASSWORD \
            CHAT_NATS_MEDIA_PASSWORD CHAT_NATS_SEARCH_PASSWORD CHAT_NATS_GATEWAY_PASSWORD CHAT_NATS_OPS_PASSWORD \
            POSTGRES_PASSWORD AUTH_DB_PASSWORD MESSAGES_DB_PASSWORD PRESENCE_DB_PASSWORD MEDIA_DB_PASSWORD \
            CHAT_MEDIA_INTERNAL_TOKEN CHAT_MEDIA_URL_KEY \
            MINIO_ROOT_USER MINIO_ROOT_PASSWORD GRAFANA_ADMIN_PASSWORD; do
  if ! grep -q "^${name}=" .env; then
    case "$name" in
      # MinIO access key: short and alphanumeric
      MINIO_ROOT_USER) value=$(python3 -c 'import secrets; print("chat" + secrets.token_hex(8))') ;;
      *) value=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') ;;
    esac
    echo "${name}=${value}" >> .env
  fi
done
echo "wrote .env (keep it out of version control)"
