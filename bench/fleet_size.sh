#!/usr/bin/env bash
# Known check-ins in a large fleet against a 10,000-device one, in
# alternating rounds, with the CPU time per check-in read from /proc around
# each run: the server's, and of it SQLite's threads' (where the `last seen`
# writes run), or PostgreSQL's backends'. The figures behind the fleet-size
# target of docs/performance.md.
#   [SK_BIG_FLEET=1000000] bench/fleet_size.sh [sqlite|postgres] [rounds, default 3]
# Needs the release build and wrk; PostgreSQL at $SEATKEEPER_TEST_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
rounds=${2:-3}
bin=${CARGO_TARGET_DIR:-target}/release/seatkeeper
pg_admin=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
small=10000
big=${SK_BIG_FLEET:-1000000}
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
source bench/common.sh

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "$backend" = sqlite ] || for db in seatkeeper_fleet_small seatkeeper_fleet_big; do
        psql "$pg_admin" -qc "drop database if exists $db with (force)" > /dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

url_of() { # name
    case $backend in
        sqlite) echo "sqlite://$work/$1.db" ;;
        postgres)
            psql "$pg_admin" -qc "drop database if exists seatkeeper_fleet_$1 with (force)" -c "create database seatkeeper_fleet_$1" 2>/dev/null
            echo "${pg_admin%/*}/seatkeeper_fleet_$1" ;;
        *) echo "usage: bench/fleet_size.sh [sqlite|postgres] [rounds]" >&2; exit 2 ;;
    esac
}

# serve URL ADDR: starts a server and waits until it answers and, on SQLite,
# has learnt which devices hold seats; echoes its pid.
serve() {
    DATABASE_URL=$1 RUST_LOG=warn,store=info "$bin" serve --addr "$2" --checkin-rate 0 > "$work/$2.log" 2>&1 &
    local pid=$!
    until_serving "$2"
    if [ "$backend" = sqlite ]; then
        for _ in $(seq 1 600); do grep -q "learnt which devices hold seats" "$work/$2.log" && break; sleep 0.1; done
    fi
    echo "$pid"
}

small_url=$(url_of small)
big_url=$(url_of big)
small_key=$(seed_fleet "$small_url" "$small" 1 "$work/small.json")
big_key=$(seed_fleet "$big_url" "$big" 1 "$work/big.json")
small_at=127.0.0.1:3971
big_at=127.0.0.1:3972
small_pid=$(serve "$small_url" "$small_at"); pids+=("$small_pid")
big_pid=$(serve "$big_url" "$big_at"); pids+=("$big_pid")

database() { [ "$backend" = postgres ] && pgrep -x postgres || true; }
# CPU ticks of a server's SQLite threads (sqlx names them sqlx-sqlite-worker-N).
sqlite_ticks() { cat /proc/"$1"/task/*/stat 2>/dev/null | awk '$2 ~ /^\(sqlx-sqlite/ { s += $14 + $15 } END { print s + 0 }'; }
wrk_at() { # addr key devices seconds
    SK_PRODUCT_KEY=$2 SK_DEVICES=$3 SK_MODE=known wrk -t1 -c64 -d"$4"s -s bench/checkin.lua "http://$1"
}

# run LABEL ADDR KEY DEVICES PID: echoes check-ins/s, and prints the line.
run() {
    local server0 database0 sqlite0 server1 database1 sqlite1 n rps of
    server0=$(cpu_ticks "$5"); database0=$(cpu_ticks $(database)); sqlite0=$(sqlite_ticks "$5")
    wrk_at "$2" "$3" "$4" 10 > "$work/wrk.txt"
    server1=$(cpu_ticks "$5"); database1=$(cpu_ticks $(database)); sqlite1=$(sqlite_ticks "$5")
    n=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
    rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$work/wrk.txt")
    case $backend in
        sqlite) of=" (SQLite's threads $(per_check_in $((sqlite1 - sqlite0)) "$n") of it)" ;;
        postgres) of=", PostgreSQL $(per_check_in $((database1 - database0)) "$n")" ;;
    esac
    echo "$1: $rps check-ins/s; CPU per check-in: server $(per_check_in $((server1 - server0)) "$n")$of" >&2
    echo "$rps"
}

# Warm up both.
wrk_at "$small_at" "$small_key" "$small" 2 > /dev/null
wrk_at "$big_at" "$big_key" "$big" 2 > /dev/null
ratios=()
for _ in $(seq 1 "$rounds"); do
    small_rps=$(run "$small devices" "$small_at" "$small_key" "$small" "$small_pid")
    big_rps=$(run "$big devices" "$big_at" "$big_key" "$big" "$big_pid")
    ratios+=("$(awk -v a="$small_rps" -v b="$big_rps" 'BEGIN { printf "%.2f", a / b }')")
done
echo "$backend: the $big-device fleet is slower by ${ratios[*]}× (median $(median "${ratios[@]}")×)"
