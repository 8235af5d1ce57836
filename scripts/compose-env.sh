#!/usr/bin/env bash
# `make compose-env`: write .env for docker-compose with fresh random secrets (NATS users'
# passwords); an existing .env keeps its values and gains only what it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
touch .env
chmod 600 .env
for name in CHAT_NATS_AUTH_PASSWORD CHAT_NATS_MESSAGES_PASSWORD CHAT_NATS_PRESENCE_PASSWORD \
            CHAT_NATS_GATEWAY_PASSWORD CHAT_NATS_OPS_PASSWORD; do
  if ! grep -q "^${name}=" .env; then
    echo "${name}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env
  fi
done
echo "wrote .env (keep it out of version control)"
