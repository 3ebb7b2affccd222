#!/usr/bin/env bash
# The project's one test command, on a fresh machine as on a developer's: installs what the tests need when it is
# missing, then runs `dotnet test` with any arguments given (e.g. ./test.sh --project tests/ModelAsData.Tests) and
# closes with one line `tests: N passed, M failed`. .ci/run calls it too.
set -euo pipefail
cd "$(dirname "$0")"

# --- What the tests need, one function per tool -----------------------------------------------------------------
# Each checks first and installs only when missing, so a second run costs nothing. Later work adds its tools here
# (PgBouncer: the `pgbouncer` package and binary; a headless Chromium: `chromium`), each as a needs_* line below.

apt_updated=false

# Installs Debian packages, as root or through sudo; says what to do by hand where there is no apt-get.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: $* missing and there is no apt-get here: install it with your system's package manager, then run ./test.sh again." >&2
    exit 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "test.sh: $* missing; installing needs root and there is no sudo: run 'apt-get install -y $*' as root." >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  if [ "$apt_updated" = false ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=true
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL's server binaries: the integration tests start a throwaway cluster from them (initdb, pg_ctl). Not
# needed when MAD_TEST_PG points at a server already running.
needs_postgresql() {
  if [ -n "${MAD_TEST_PG:-}" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    return
  fi
  echo "test.sh: PostgreSQL's server binaries are missing: installing Debian's postgresql package."
  apt_install postgresql
}

# PgBouncer: the tests of applications that reach the database through a transaction-mode pooler start one
# (tests/…/Infrastructure/PgBouncer.cs).
needs_pgbouncer() {
  if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
    return
  fi
  echo "test.sh: PgBouncer is missing: installing Debian's pgbouncer package."
  apt_install pgbouncer
}

# The real models the tests score: the shared folder beside the repository (../shared, or beside any folder above
# it), or the one MAD_SHARED names. Said once here rather than by every model test.
needs_shared() {
  if [ -n "${MAD_SHARED:-}" ]; then
    if [ -f "$MAD_SHARED/models/external/MANIFEST.md" ]; then return; fi
    echo "test.sh: MAD_SHARED=$MAD_SHARED has no models/external/MANIFEST.md: point it at the shared folder." >&2
    exit 1
  fi
  local dir
  dir=$(pwd)
  while [ "$dir" != "/" ]; do
    if [ -f "$dir/shared/models/external/MANIFEST.md" ]; then return; fi
    dir=$(dirname "$dir")
  done
  echo "test.sh: no shared/models/external beside $(pwd) or a folder above it: clone the repository beside the shared folder, or run MAD_SHARED=/path/to/shared ./test.sh" >&2
  exit 1
}

# A headless Chromium: the drift report's test opens the HTML file in it and checks that the plots render
# (tests/…/Monitoring/DriftReportBrowserTests.cs).
needs_chromium() {
  if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    return
  fi
  echo "test.sh: Chromium is missing: installing Debian's chromium package."
  apt_install chromium
}

needs_postgresql
needs_pgbouncer
needs_shared
needs_chromium

# --- The tests ---------------------------------------------------------------------------------------------------
# A hung test must not hold CI for its 90 minutes: the suite takes under five.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
timeout 30m dotnet test "$@" 2>&1 | tee "$log" || status=$?

# One closing line in the plain form CI reads: the totals of the runner's summary (the last one, which covers every
# test project).
passed=$(grep -E '^\s+succeeded: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
failed=$(grep -E '^\s+failed: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
# The failed tests again, by name with the first lines of their messages, so a reader of the log's tail (CI shows only
# the tail, after ONNX Runtime's expected-failure noise) sees which ones.
if [ "${failed}" != "0" ]; then
  echo "--- failed tests ---"
  grep -E -A 12 '^\s*failed [A-Za-z_]' "$log" | grep -v 'onnxruntime' | head -200 || true
fi
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
