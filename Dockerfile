# syntax=docker/dockerfile:1
# One image for every service; the command selects which one runs:
#   python -m chat_auth | chat_messages | chat_presence | chat_media | chat_search | chat_gateway (default)
# The gateway serves the web app (built in the first stage) at / (GATEWAY_WEB_DIR).
# Build:  docker build -t chat-backend:dev .
# The web app alone, served by nginx (compose `web`, Kubernetes chat-web):
#         docker build --target web -t chat-web:dev .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG NGINX_IMAGE=nginxinc/nginx-unprivileged:1.27-alpine

# --- web: the Next.js static export (web/ with the TypeScript client libs/client-ts) ----------
# checkov:skip=CKV_DOCKER_7: the tag comes from ARG NODE_IMAGE above (node:20-bookworm-slim), not latest
FROM ${NODE_IMAGE} AS web-build
ENV NEXT_TELEMETRY_DISABLED=1
WORKDIR /src
COPY libs/client-ts/ libs/client-ts/
COPY web/ web/
WORKDIR /src/web
RUN npm ci --no-audit --no-fund && npm run build

# --- build: wheels of the workspace packages, installed (non-editable) into a venv -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY libs/ libs/
COPY services/ services/
# Every libs/* and services/* package with a pyproject.toml (new services are picked up),
# except libs/devtools: process supervision for `make run`/tests, which bundles nats-server.
# Local wheels are passed by path so `chat-proto`/`chat-common` never resolve from an index.
# ($dirs is split on purpose.)
# hadolint ignore=SC2086
RUN set -eux; \
    dirs=""; \
    for d in libs/*/ services/*/; do \
      [ -f "${d}pyproject.toml" ] || continue; \
      case "$d" in libs/devtools/) continue ;; esac; \
      dirs="$dirs $d"; \
    done; \
    /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels $dirs; \
    /opt/venv/bin/pip install /wheels/*.whl; \
    /opt/venv/bin/python -c "import chat_auth.main, chat_messages.main, chat_presence.main, chat_media.main, chat_search.main, chat_gateway.main"
# The export with its CSP hashes and precompressed assets (chat_gateway.web prepare), and
# the same per-file CSP as an nginx map for the `web` image.
COPY --from=web-build /src/web/out /web
COPY deploy/web/nginx_csp.py /src/deploy/web/nginx_csp.py
RUN /opt/venv/bin/python -m chat_gateway.web prepare /web \
 && /opt/venv/bin/python /src/deploy/web/nginx_csp.py /web > /web-csp.conf

# --- web: the static export behind nginx (unprivileged: uid 101, port 8080) -----------------
FROM ${NGINX_IMAGE} AS web
LABEL org.opencontainers.image.title="chat-web" \
      org.opencontainers.image.description="The chat web app (static export) served by nginx"
COPY deploy/web/nginx.conf /etc/nginx/nginx.conf
COPY --from=build /web-csp.conf /etc/nginx/csp.conf
COPY --from=build /web /usr/share/nginx/html
USER 101:101
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="chat-backend" \
      org.opencontainers.image.description="Realtime chat backend services (auth, messages, presence, media, search, gateway) and the web app"
RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin chat \
 && mkdir -p /app/data \
 && chown 10001:10001 /app/data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /web /app/web
# Inside a container the services must listen on all interfaces (defaults are 127.0.0.1).
# Bytecode was compiled at install time, so a read-only root filesystem is fine.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTH_HOST=0.0.0.0 \
    MESSAGES_HOST=0.0.0.0 \
    PRESENCE_HOST=0.0.0.0 \
    MEDIA_HOST=0.0.0.0 \
    SEARCH_HOST=0.0.0.0 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_WEB_DIR=/app/web
# Relative SQLite defaults (data/*.db) land in /app/data; production uses PostgreSQL.
WORKDIR /app
USER 10001:10001
# gateway 8080, auth 8081, messages 8082, presence 8083, media 8084, search 8085 (each <P>_PORT)
EXPOSE 8080 8081 8082 8083 8084 8085
STOPSIGNAL SIGTERM
CMD ["python", "-m", "chat_gateway"]
