#!/usr/bin/env bash
# Schemathesis (PyPI) against the release server, on SQLite and on PostgreSQL:
# requests generated from GET /api/v1/openapi.json for every operation but the
# administration key's rotation (it would end the run's own key). The server
# must answer no 5xx, and accept every request the description calls valid.
#   scripts/schemathesis.sh [seconds per database, default 45]
# Prints a `test result:` line per database, as cargo's tests do, for
# scripts/test.sh's sum. A fixed seed makes a run repeatable.
#
# scripts/schemathesis-baseline.json accepts one refusal the description cannot
# state: the audit log's `since` must come before its `until` (OpenAPI cannot
# compare two parameters), so `/activity` and `/activity.csv` may answer 400 to
# a pair of valid dates in the wrong order.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
budget=${1:-45}
bin="$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/seatkeeper"
schemathesis=$SEATKEEPER_TOOLS/schemathesis/bin/schemathesis
pg_admin=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
addr=127.0.0.1:3960
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

status=0
for backend in sqlite postgres; do
    case $backend in
        sqlite) url="sqlite://$work/schemathesis.db" ;;
        postgres)
            if ! psql -q "$pg_admin" -c "drop database if exists sk_schemathesis with (force)" \
                -c "create database sk_schemathesis" > /dev/null 2>&1; then
                if [ -n "${SEATKEEPER_REQUIRE_POSTGRES:-}" ]; then
                    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (schemathesis, postgres: no server)"
                    status=1
                else
                    echo "!!! SKIPPED schemathesis on PostgreSQL: no server at $pg_admin"
                    echo "test result: ok. 0 passed; 0 failed; 1 ignored (schemathesis, postgres)"
                fi
                continue
            fi
            url="${pg_admin%/*}/sk_schemathesis" ;;
    esac
    DATABASE_URL=$url "$bin" org create acme --json > "$work/org.json"
    DATABASE_URL=$url "$bin" product add --org acme --code editor --name Editor --seats 5 --auto-assign > /dev/null
    admin_key=$(grep -o 'sk_admin_[0-9a-f]*' "$work/org.json" | head -n 1)
    product_key=$(grep -o 'sk_prod_[0-9a-f]*' "$work/org.json" | head -n 1)
    printf '[auth.openapi.admin_key]\nbearer = "%s"\n\n[auth.openapi.product_key]\nbearer = "%s"\n' \
        "$admin_key" "$product_key" > "$work/schemathesis.toml"
    DATABASE_URL=$url "$bin" serve --addr "$addr" --checkin-rate 0 --failed-auth-per-minute 0 > "$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do curl -sf "http://$addr/healthz" > /dev/null && break; sleep 0.1; done
    if "$schemathesis" --config-file "$work/schemathesis.toml" run "http://$addr/api/v1/openapi.json" \
        --checks not_a_server_error,positive_data_acceptance \
        --exclude-path /api/v1/admin/settings/admin-key/rotate \
        --baseline scripts/schemathesis-baseline.json \
        --max-time "$budget" --seed 1 > "$work/$backend.log" 2>&1; then
        grep -E "generated|passed" "$work/$backend.log" | tail -n 2
        echo "test result: ok. 1 passed; 0 failed; 0 ignored (schemathesis, $backend)"
    else
        tail -n 80 "$work/$backend.log"
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (schemathesis, $backend)"
        status=1
    fi
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
done
exit "$status"
