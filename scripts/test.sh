#!/usr/bin/env bash
# Runs every test of Seatkeeper: the release build of the server and the
# hydration bundle, the store, API, server-function and CLI tests on SQLite and
# PostgreSQL, then the browser tests in Chromium.
#
# PostgreSQL: SEATKEEPER_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# A local cluster is started when one is installed and down. Without a server the
# PostgreSQL halves are skipped loudly, unless SEATKEEPER_REQUIRE_POSTGRES=1 (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

ensure_npm_tools
# The test tools (Schemathesis, Chromium, playwright-core) install while the
# server builds: they wait mostly on the network, the build on the cores.
( set -o pipefail; { ensure_schemathesis; ensure_browser; } 2>&1 | sed -u 's/^/[test tools] /' ) & test_tools=$!

pg_url=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if [[ $pg_url == *@127.0.0.1:5432/* ]] && command -v pg_ctlcluster >/dev/null && command -v pg_isready >/dev/null; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        say "starting the local PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
fi

scripts/build.sh
wait "$test_tools" || { say "installing the test tools failed (their output is above, marked [test tools])"; exit 1; }

say "running the store, API and CLI tests"
# The tests that run whole processes run this release binary, the one users run.
export SEATKEEPER_BIN="$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/seatkeeper"
log=$(mktemp)
# Each PostgreSQL half skipped for want of a server writes a line here
# (store::testing), so that the summary counts it as skipped, not passed.
export SEATKEEPER_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$SEATKEEPER_SKIP_LOG"' EXIT
status=0
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --locked --no-fail-fast -p seatkeeper-store -p seatkeeper -p app -p seatkeeper-client --lib --bins --tests -- --color never 2>&1 | tee "$log" || status=$?
pg_skipped=$(sort -u "$SEATKEEPER_SKIP_LOG" | wc -l)
if [ "$pg_skipped" -gt 0 ]; then
    say "$pg_skipped PostgreSQL halves were SKIPPED: no server (see SEATKEEPER_TEST_POSTGRES_URL)"
fi

say "running Schemathesis against the API on both databases"
scripts/schemathesis.sh 2>&1 | tee -a "$log" || status=$?

say "running the browser tests (end2end/, Chromium)"
(cd end2end && npm test) 2>&1 | tee -a "$log" || status=$?

# One closing line for the whole run, summed over cargo's test binaries and
# node's test runner; a run that failed before any test could (a build
# error) counts as one failure rather than none.
awk -v status="$status" -v pg_skipped="$pg_skipped" '
     BEGIN { passed = -pg_skipped; skipped = pg_skipped }
     /^test result:/ { passed += $4; failed += $6; skipped += $8 }
     /^# pass /     { passed += $3 }
     /^# fail /     { failed += $3 }
     /^# skipped /  { skipped += $3 }
     END { if (status != 0 && failed == 0) failed = 1
           printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped }' "$log"
exit "$status"
