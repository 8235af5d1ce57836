#!/usr/bin/env bash
# `make test`: install, validate the deployment files (deploy/validate.sh), start a throwaway
# PostgreSQL, install OpenSearch's jars, run pytest (unit + integration). NATS, S3 and OpenSearch are started by the test fixtures themselves.
# Under CI=true a PostgreSQL that cannot be installed or started, or OpenSearch jars that
# cannot be installed, is a hard failure; otherwise a loud warning, and the postgres-marked
# (resp. OpenSearch) tests skip.
# Extra arguments go to pytest: scripts/test.sh -k devtools -x
# Tests run in CHAT_TEST_WORKERS pytest-xdist workers (default: one per core, at most 4).
set -euo pipefail
cd "$(dirname "$0")/.."

CI="${CI:-}"
PY=.venv/bin/python

say() { printf '[test.sh] %s\n' "$*" >&2; }
warn_loud() {  # warn_loud WHAT-WENT-WRONG WHICH-TESTS
  printf '\n%s\n[test.sh] WARNING: %s\n[test.sh] %s will be SKIPPED.\n%s\n\n' \
    "########################################################################" "$1" "$2" \
    "########################################################################" >&2
}
pg_fail() {  # hard failure in CI, loud warning elsewhere
  if [[ "$CI" == "true" ]]; then say "ERROR (CI): $*"; exit 1; fi
  warn_loud "$*" "postgres-marked tests"
  return 1
}
os_fail() {
  if [[ "$CI" == "true" ]]; then say "ERROR (CI): $*"; exit 1; fi
  warn_loud "$*" "OpenSearch tests"
  return 1
}

have_pg_binaries() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

install_pg() {
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || return 1
    sudo="sudo"
  fi
  command -v apt-get >/dev/null || return 1
  say "PostgreSQL server binaries missing: apt-get install postgresql"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql || return 1
  # The package may create and start its own cluster (5432): we do not use it; stop it.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
      $sudo pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
    done
  fi
  have_pg_binaries
}

make install

# --- the browser side: Chromium (Debian's; never a downloaded one), Node packages ------------
# The web app (web/), its TypeScript client (libs/client-ts/) and the AsyncAPI validator
# (tools/asyncapi/) install from their lockfiles (npm ci), each only when its lockfile changed.
# The web app itself is built by the browser tests' fixture (chat_devtools.webapp).
web_fail() {
  if [[ "$CI" == "true" ]]; then say "ERROR (CI): $*"; exit 1; fi
  warn_loud "$*" "browser, TypeScript and AsyncAPI tests"
  return 1
}
apt_install() {  # apt_install PACKAGE...
  command -v apt-get >/dev/null || return 1
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || return 1
    sudo="sudo"
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || return 1
}
install_browser_side() {
  if [[ ! -x /usr/bin/chromium ]] || ! compgen -G '/usr/share/fonts/*/noto/NotoColorEmoji*' >/dev/null \
     || ! compgen -G '/usr/share/fonts/*/noto/NotoSansCJK*' >/dev/null; then
    say "Chromium or its fonts missing: apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji"
    apt_install chromium fonts-noto-cjk fonts-noto-color-emoji \
      || { web_fail "could not install Chromium and its fonts (apt-get)"; return 1; }
  fi
  if ! command -v npm >/dev/null; then
    say "npm missing: apt-get install nodejs npm"
    apt_install nodejs npm || { web_fail "could not install Node.js and npm (apt-get)"; return 1; }
  fi
  local dir stamp
  for dir in tools/asyncapi libs/client-ts web; do
    [[ -f "$dir/package-lock.json" ]] || continue
    stamp="$dir/node_modules/.lock-hash"
    if [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)" ]]; then
      continue
    fi
    say "npm ci in $dir"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null) \
      || { web_fail "npm ci failed in $dir"; return 1; }
    sha256sum "$dir/package-lock.json" | cut -d' ' -f1 > "$stamp"
  done
}
install_browser_side || true

# The web app builds (chat_devtools.webapp: only when its sources changed; ~1 min of CPU)
# in the background while the deployment checks run and the test servers install; pytest
# starts once it is done (the browser tests' fixture would otherwise build it then).
WEB_BUILD_PID=""
if [[ -f web/package.json ]] && command -v npm >/dev/null; then
  mkdir -p .cache
  "$PY" -m chat_devtools.webapp > .cache/web-build.log 2>&1 &
  WEB_BUILD_PID=$!
fi

# --- the deployment and the monitoring: deploy/validate.sh (static, ~20 s; tools cached) -----
# Dockerfile, docker-compose.yml, the kustomize overlays, NetworkPolicies, alert rules and
# Grafana dashboards (docs/operations.md, "Validation"). Something invalid fails make test;
# a tool that cannot be installed (exit 3) fails it under CI=true, else a loud warning.
say "deploy/validate.sh"
set +e
mkdir -p .cache
deploy/validate.sh > .cache/validate.log 2>&1
vrc=$?
set -e
if [[ $vrc -eq 0 ]]; then
  say "deployment files valid"
elif [[ $vrc -eq 3 && "$CI" != "true" ]]; then
  tail -5 .cache/validate.log >&2
  warn_loud "deploy/validate.sh could not install a tool (see .cache/validate.log)" "the deployment checks"
else
  cat .cache/validate.log >&2
  say "ERROR: deploy/validate.sh failed (exit $vrc): a manifest, a rule or a dashboard is broken"
  exit 1
fi

PG_DIR=""
cleanup() {
  local rc=$?
  if [[ -n "${WEB_BUILD_PID:-}" ]]; then kill "$WEB_BUILD_PID" 2>/dev/null || true; fi
  if [[ -n "$PG_DIR" ]]; then
    "$PY" -m chat_devtools.pgserver stop --base-dir "$PG_DIR" || say "could not stop PostgreSQL in $PG_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_pg() {
  if ! have_pg_binaries; then
    install_pg || { pg_fail "could not install PostgreSQL (apt-get install postgresql)"; return 1; }
  fi
  PG_DIR="$(mktemp -d /tmp/chat-test-pg.XXXXXX)"
  local url
  if ! url="$("$PY" -m chat_devtools.pgserver start --base-dir "$PG_DIR")"; then
    pg_fail "could not start PostgreSQL (see above)"
    return 1
  fi
  export CHAT_TEST_PG_URL="$url"
  say "PostgreSQL for tests: $CHAT_TEST_PG_URL"
}

if [[ -n "${CHAT_TEST_PG_URL:-}" ]]; then
  say "using the given PostgreSQL: $CHAT_TEST_PG_URL"
else
  start_pg || unset CHAT_TEST_PG_URL
fi

# OpenSearch 2.19.1 (codelibs' runner): jars from Maven Central into .cache/ (git-ignored),
# once; later runs find the marker and do nothing (no Maven, no network). A fresh clone
# copies them from ~/.m2 offline (~5 s). Needs a JDK 11+ (javac) and Maven.
install_java_maven() {
  command -v apt-get >/dev/null || return 1
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || return 1
    sudo="sudo"
  fi
  say "javac or mvn missing: apt-get install openjdk-17-jdk-headless maven"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    openjdk-17-jdk-headless maven || return 1
}

install_opensearch() {
  if ! command -v mvn >/dev/null || { [[ -z "${JAVA_HOME:-}${OPENSEARCH_JAVA_HOME:-}" ]] && ! command -v javac >/dev/null; }; then
    install_java_maven || { os_fail "could not install Java and Maven (apt-get)"; return 1; }
  fi
  local home dest=()
  [[ -n "${CHAT_TEST_OPENSEARCH_HOME:-}" ]] && dest=(--dest "$CHAT_TEST_OPENSEARCH_HOME")
  if ! home="$("$PY" -m chat_devtools.opensearch install "${dest[@]}")"; then
    os_fail "could not install OpenSearch's jars (Maven Central; see above)"
    return 1
  fi
  export CHAT_TEST_OPENSEARCH_HOME="$home"
  say "OpenSearch for tests: $CHAT_TEST_OPENSEARCH_HOME"
}

install_opensearch || unset CHAT_TEST_OPENSEARCH_HOME


if [[ -n "$WEB_BUILD_PID" ]]; then
  say "waiting for the web app's build"
  if wait "$WEB_BUILD_PID"; then
    say "web app: $(tail -1 .cache/web-build.log)"
  else
    cat .cache/web-build.log >&2
    web_fail "the web app does not build (see above)" || true
  fi
  WEB_BUILD_PID=""
fi

# pytest-xdist: one worker per core (at most 4; CHAT_TEST_WORKERS=N sets it, 0 runs in this
# process). Whole modules go to one worker (--dist loadfile): module-scoped clusters stay
# shared, and a module's tests keep their order. Each worker has its own session servers
# (NATS, S3, OpenSearch) and its own databases on the one PostgreSQL.
WORKERS="${CHAT_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
XDIST=()
if [[ "$WORKERS" != 0 && " $* " != *" -n "* && " $* " != *" -p no:xdist "* ]]; then
  XDIST=(-n "$WORKERS" --dist loadfile)
fi

set +e
"$PY" -m pytest "${XDIST[@]}" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  say "pytest collected no tests: treated as a failure"
fi
exit "$rc"
