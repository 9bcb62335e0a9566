#!/usr/bin/env bash
# Where the CPU goes when PostgreSQL known check-ins are served by one server
# process or by two on the same database: the same client load (two wrk of 32
# connections each) against one process, then against two, alternating, with
# the CPU time per check-in of the servers and of PostgreSQL's backends, read
# from /proc around each run.
#   bench/two_processes.sh [rounds, default 2]
# Needs the release build and wrk; PostgreSQL at $SEATKEEPER_TEST_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
bin=${CARGO_TARGET_DIR:-target}/release/seatkeeper
pg_admin=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
devices=10000
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
source bench/common.sh

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

psql "$pg_admin" -qc "drop database if exists seatkeeper_two with (force)" -c "create database seatkeeper_two" 2>/dev/null
url=${pg_admin%/*}/seatkeeper_two
key=$(seed_fleet "$url" "$devices" 1 "$work/org.json")

one=127.0.0.1:3961
two=127.0.0.1:3962
for at in "$one" "$two"; do
    DATABASE_URL=$url RUST_LOG=warn "$bin" serve --addr "$at" --checkin-rate 0 > /dev/null 2>&1 &
    pids+=($!)
    until_serving "$at"
done

wrk_at() { SK_PRODUCT_KEY=$key SK_DEVICES=$devices SK_MODE=known wrk -t1 -c32 -d10s -s bench/checkin.lua "http://$1"; }

run() { # label first-address second-address
    local servers0 database0 servers1 database1 n
    servers0=$(cpu_ticks "${pids[@]}"); database0=$(cpu_ticks $(pgrep -x postgres))
    wrk_at "$2" > "$work/a" &
    wrk_at "$3" > "$work/b"; wait $!
    servers1=$(cpu_ticks "${pids[@]}"); database1=$(cpu_ticks $(pgrep -x postgres))
    n=$(cat "$work/a" "$work/b" | awk '/requests in/ { s += $1 } END { print s }')
    echo "$1: $((n / 10)) check-ins/s; CPU per check-in: servers $(per_check_in $((servers1 - servers0)) "$n"), PostgreSQL $(per_check_in $((database1 - database0)) "$n")"
}

# Warm up both.
SK_PRODUCT_KEY=$key SK_DEVICES=$devices SK_MODE=known wrk -t1 -c64 -d2s -s bench/checkin.lua "http://$one" > /dev/null
SK_PRODUCT_KEY=$key SK_DEVICES=$devices SK_MODE=known wrk -t1 -c64 -d2s -s bench/checkin.lua "http://$two" > /dev/null
for _ in $(seq 1 "$rounds"); do
    run "one process " "$one" "$one"
    run "two processes" "$one" "$two"
done
psql "$pg_admin" -qc "drop database if exists seatkeeper_two with (force)" > /dev/null 2>&1 || true
