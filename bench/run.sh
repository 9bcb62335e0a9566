#!/usr/bin/env bash
# First check-in figures: wrk against a release server on SQLite and on
# PostgreSQL, with the bare /healthz route of the same process as the ceiling.
#   bench/run.sh [seconds per run, default 10] [connections, default 32]
# Needs the release build (scripts/serve.sh or `cargo leptos build --release`);
# installs wrk from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}
bin=${CARGO_TARGET_DIR:-target}/release/seatkeeper
addr=127.0.0.1:3900
pg_admin=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
[ -x "$bin" ] || { echo "build first: cargo leptos build --release" >&2; exit 1; }

work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# requests/s and p99 latency from wrk's output
wrk_run() {
    wrk -t1 -c"$connections" -d"${duration}s" --latency "$@" > "$work/wrk.txt"
    local rps p99 errors
    rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")
    errors=$(awk '/Non-2xx/ { print $5 }' "$work/wrk.txt")
    echo "$rps ${p99:-?} ${errors:-0}"
}

bench_backend() {
    local backend=$1 url=$2
    # No check-in rate limit: the benchmark measures what the server can carry.
    DATABASE_URL=$url RUST_LOG=warn "$bin" serve --addr "$addr" --checkin-rate 0 > "$work/server.out" 2> "$work/server.err" &
    server=$!
    for _ in $(seq 1 50); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.1; done
    local key
    key=$(DATABASE_URL=$url "$bin" org create bench --json | grep -o 'sk_prod_[0-9a-f]*' | head -n 1)
    DATABASE_URL=$url "$bin" product add --org bench --code bench --name Bench --seats 1000000 --auto-assign > /dev/null
    export SK_PRODUCT_KEY=$key SK_DEVICES=1000

    SK_MODE=sequential wrk -t1 -c8 -d3s -s bench/checkin.lua "http://$addr" > /dev/null   # the known devices
    read -r bare_rps bare_p99 _ <<< "$(wrk_run "http://$addr/healthz")"
    read -r known_rps known_p99 known_err <<< "$(SK_MODE=known wrk_run -s bench/checkin.lua "http://$addr")"
    read -r new_rps new_p99 new_err <<< "$(SK_MODE=new wrk_run -s bench/checkin.lua "http://$addr")"
    kill "$server"; wait "$server" 2>/dev/null || true; server=

    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
    printf '%-9s | %-20s | %10.0f | %8s | %-6s | %s\n' "$backend" "bare /healthz" "$bare_rps" "$bare_p99" "100%" "-"
    printf '%-9s | %-20s | %10.0f | %8s | %-6s | %s\n' "$backend" "check-in, known" "$known_rps" "$known_p99" "$(ratio "$known_rps" "$bare_rps")" "$known_err"
    printf '%-9s | %-20s | %10.0f | %8s | %-6s | %s\n' "$backend" "check-in, new device" "$new_rps" "$new_p99" "$(ratio "$new_rps" "$bare_rps")" "$new_err"
}

echo "wrk -t1 -c$connections -d${duration}s on $(nproc) cores; 1,000 known devices"
printf '%-9s | %-20s | %10s | %8s | %-6s | %s\n' backend route "req/s" p99 "/bare" "non-2xx"
bench_backend sqlite "sqlite://$work/bench.db"
if psql "$pg_admin" -qc "drop database if exists seatkeeper_bench" -c "create database seatkeeper_bench" >/dev/null 2>&1; then
    bench_backend postgres "${pg_admin%/*}/seatkeeper_bench"
    psql "$pg_admin" -qc "drop database if exists seatkeeper_bench with (force)" >/dev/null 2>&1 || true
else
    echo "postgres  | skipped: no server at $pg_admin"
fi
