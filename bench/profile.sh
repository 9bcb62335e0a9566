#!/usr/bin/env bash
# Where a check-in's time goes: drives the release server with one kind of
# check-in for 10 seconds under `perf record -g`, then prints the throughput,
# the CPU the server (and, on PostgreSQL, the database's backends) used per
# check-in, and the hottest functions.
#   [SK_DEVICES=10000] bench/profile.sh [sqlite|postgres] [known|new]
# SK_DEVICES: the fleet's size; SK_KEEP=1 keeps the work folder (perf.data,
# the server's log) and prints where it is.
# Needs the release build, wrk and perf (Debian's linux-perf); PostgreSQL at
# $SEATKEEPER_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-postgres}
mode=${2:-known}
bin=${CARGO_TARGET_DIR:-target}/release/seatkeeper
pg_admin=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
addr=127.0.0.1:3952
devices=${SK_DEVICES:-10000}
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
source bench/common.sh

work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; if [ -n "${SK_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

case $backend in
    sqlite) url=sqlite://$work/profile.db ;;
    postgres)
        psql "$pg_admin" -qc "drop database if exists seatkeeper_profile with (force)" -c "create database seatkeeper_profile" 2>/dev/null
        url=${pg_admin%/*}/seatkeeper_profile ;;
    *) echo "usage: bench/profile.sh [sqlite|postgres] [known|new]" >&2; exit 2 ;;
esac
key=$(seed_fleet "$url" "$devices" 1 "$work/org.json")

DATABASE_URL=$url RUST_LOG=warn "$bin" serve --addr "$addr" --checkin-rate 0 > "$work/server.log" 2>&1 &
pid=$!
until_serving "$addr"
# Warm up: the server learns its holdings, the database its pages.
SK_PRODUCT_KEY=$key SK_DEVICES=$devices SK_MODE=$mode wrk -t1 -c64 -d2s -s bench/checkin.lua "http://$addr" > /dev/null

database() { [ "$backend" = postgres ] && pgrep -x postgres || true; }
server0=$(cpu_ticks "$pid"); database0=$(cpu_ticks $(database))
perf record -F 999 -g -p "$pid" -o "$work/perf.data" -- sleep 9 2> /dev/null &
perf_pid=$!
SK_PRODUCT_KEY=$key SK_DEVICES=$devices SK_MODE=$mode wrk -t1 -c64 -d10s -s bench/checkin.lua "http://$addr" > "$work/wrk.txt"
server1=$(cpu_ticks "$pid"); database1=$(cpu_ticks $(database))
wait "$perf_pid" || true

requests=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
per() { per_check_in "$1" "$requests"; }
echo "$backend, $mode devices: $(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.txt") check-ins/s"
echo "CPU per check-in: server $(per $((server1 - server0)))$([ "$backend" = postgres ] && echo ", PostgreSQL backends $(per $((database1 - database0)))")"
# `|| true`: head closing the pipe ends perf early, which is not a failure.
top() { perf report -i "$work/perf.data" --no-children --stdio -g none "${@:2}" 2> /dev/null | grep '%' | head -n "$1" | cut -c1-140 || true; }
echo "Threads of the server, share of samples:"
top 5 --sort comm
echo "Hottest functions, share of samples:"
top 25 --sort symbol
if [ "$backend" = sqlite ]; then
    echo "Hottest functions of SQLite's threads (the writer and the readers), share of their samples:"
    top 15 --comms sqlx-sqlite-wor --percentage relative --sort symbol
fi
