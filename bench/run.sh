#!/usr/bin/env bash
# Seatkeeper's performance targets (issue 5), measured in one run against the
# release server, every figure next to a baseline measured in the same run:
#   bench/run.sh [seconds per load run, default 10]
# SK_BACKENDS="sqlite postgres" (the default) names the backends to measure.
# Needs the release build (scripts/build.sh; it builds bench/ceiling itself);
# installs wrk from Debian's packages when missing. PostgreSQL parts run when
# a server answers at $SEATKEEPER_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres). SK_ROUNDS (default 3): rounds of
# the targets that compare two loads. Takes about 15 minutes.
#
# Fleets are seeded with SQL straight into the schema (a million check-ins
# through HTTP would take minutes and measure nothing new); every figure is
# taken through the real HTTP server.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=64
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/seatkeeper
wasm=${LEPTOS_SITE_ROOT:-target/site}/pkg/seatkeeper.wasm
addr=127.0.0.1:3900
addr2=127.0.0.1:3901
pg_admin=${SEATKEEPER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
big_fleet=${SK_BIG_FLEET:-1000000}
small_fleet=10000
# Rounds of the targets that compare two loads (two processes vs one, 1M vs 10k).
rounds=${SK_ROUNDS:-3}
holders=100000

command -v wrk >/dev/null || { apt-get update -qq >/dev/null; apt-get install -y -qq wrk >/dev/null; }
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
source bench/common.sh
# What axum itself carries (bench/ceiling): a hello-world route on axum::serve.
cargo build --quiet --locked --release -p seatkeeper-ceiling
ceiling_bin=$target/release/seatkeeper-ceiling
ceiling_addr=127.0.0.1:3999

work=$(mktemp -d)
servers=()
cleanup() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

results=$work/results
: > "$results"
# row TARGET MEASURED VERDICT
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$results"; printf '  %-64s %-28s %s\n' "$1" "$2" "$3" >&2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? "met" : "NOT met" }'; }
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "met" : "NOT met" }'; }

# Starts a server; waits until it answers; echoes its pid and start-up seconds.
start_server() { # url addr [extra env...]
    local url=$1 at=$2; shift 2
    local started; started=$(date +%s.%N)
    env "$@" DATABASE_URL="$url" RUST_LOG=warn,store=info "$bin" serve --addr "$at" --checkin-rate 0 \
        >> "$work/server.out" 2>> "$work/server.err" &
    local pid=$!
    servers+=("$pid")
    until_serving "$at"
    echo "$pid $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')"
}
# The server is not this shell's child (start_server runs in a subshell), so
# `wait` cannot wait for it: poll until it has exited and let go of its files.
stop_server() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
}

# wrk; echoes "requests/s p99-in-ms non-2xx"
load() { # connections url [wrk args...]
    local c=$1 url=$2; shift 2
    wrk -t1 -c"$c" -d"${duration}s" --latency "$@" "$url" > "$work/wrk.txt"
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = ms($2) } /Non-2xx/ { bad = $5 }
        END { printf "%.0f %.2f %d\n", rps, p99, bad }' "$work/wrk.txt"
}

# How many requests the last load() answered.
requests_done() { awk '/requests in/ { print $1 }' "$work/wrk.txt"; }

# p95 in ms of 40 GETs (after 5 to warm up), timed by curl on loopback
p95() { # url [curl args...]
    local url=$1; shift
    for _ in 1 2 3 4 5; do curl -sf -o /dev/null "$@" "$url"; done
    for _ in $(seq 1 40); do curl -sf -o /dev/null -w '%{time_total}\n' "$@" "$url"; done |
        sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", 1000 * t[int(NR * 0.95)] }'
}

# How many times a SQLite server has logged that it learnt which devices hold seats.
learnt() { grep -c "learnt which devices hold seats" "$work/server.err" || true; }
until_learnt() { # count-before
    for _ in $(seq 1 600); do [ "$(learnt)" -gt "$1" ] && return; sleep 0.1; done
}

rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

seed() { seed_fleet "$1" "$2" "$holders" "$work/org.json"; } # url devices

admin_key() { admin_key_in "$work/org.json"; }

session_cookie() { sign_in "$1" "$(admin_key)"; } # addr

checkin_run() { # addr key devices mode [connections]
    SK_PRODUCT_KEY=$2 SK_DEVICES=$3 SK_MODE=$4 load "${5:-$connections}" "http://$1" -s bench/checkin.lua
}

# Floating seats (issue 19): a product "lease" of the small fleet's devices,
# each holding a floating seat within its lease, against the same devices'
# assigned seats of "bench", in alternating rounds.
floating() { # backend addr key
    local backend=$1 at=$2 key=$3 ratios=() assigned_runs=() floating_runs=() a f
    DATABASE_URL=$small_url "$bin" product add --org bench --code lease --name Lease --seats 2000000 --auto-assign > /dev/null
    curl -sf -X PATCH "http://$at/api/v1/admin/products/lease/policy" -H "Authorization: Bearer $(admin_key)" \
        -H 'Content-Type: application/json' -d '{"seat_model": "floating", "lease_minutes": 60}' > /dev/null
    # Every device takes its lease once, in order.
    SK_PRODUCT=lease checkin_run "$at" "$key" "$small_fleet" sequential > /dev/null
    for _ in $(seq 1 "$rounds"); do
        read -r a _ <<< "$(checkin_run "$at" "$key" "$small_fleet" known)"
        read -r f _ <<< "$(SK_PRODUCT=lease checkin_run "$at" "$key" "$small_fleet" known)"
        assigned_runs+=("$a"); floating_runs+=("$f"); ratios+=("$(awk -v a="$f" -v b="$a" 'BEGIN { printf "%.2f", a / b }')")
    done
    local mid; mid=$(median "${ratios[@]}")
    row "$backend: check-in, floating seat within its lease, vs assigned ≥ 0.9× (median of $rounds rounds)" \
        "${mid}× (floating: ${floating_runs[*]} req/s; assigned: ${assigned_runs[*]})" "$(at_least "$mid" 0.9)"
}

fleet() { # backend url-of-a-fresh-10k-db url-of-a-fresh-1M-db
    local backend=$1 small=$2 big=$3 pid startup key bare known new
    echo "== $backend" >&2

    key=$(seed "$small" "$small_fleet")
    # The plain axum route first, alone on the machine as the server will be.
    "$ceiling_bin" "$ceiling_addr" & local ceiling=$!
    until_serving "$ceiling_addr"
    local cpu0 axum_cpu bare_cpu known_cpu
    cpu0=$(cpu_ticks "$ceiling")
    read -r axum_rps axum_p99 _ <<< "$(load "$connections" "http://$ceiling_addr/healthz")"
    axum_cpu=$(per_check_in $(($(cpu_ticks "$ceiling") - cpu0)) "$(requests_done)")
    kill "$ceiling"; wait "$ceiling" 2>/dev/null || true
    row "$backend: plain axum /healthz, $connections connections (bench/ceiling: axum itself)" "$axum_rps req/s, p99 $axum_p99 ms, $axum_cpu CPU each" "baseline"
    read -r pid _ <<< "$(start_server "$small" "$addr")"
    cpu0=$(cpu_ticks "$pid")
    read -r bare_rps bare_p99 _ <<< "$(load "$connections" "http://$addr/healthz")"
    bare_cpu=$(per_check_in $(($(cpu_ticks "$pid") - cpu0)) "$(requests_done)")
    row "$backend: the server's /healthz, every middleware layer (vs plain axum)" "$bare_rps req/s, p99 $bare_p99 ms, $bare_cpu CPU each ($(ratio "$bare_rps" "$axum_rps"))" "baseline"
    cpu0=$(cpu_ticks "$pid")
    read -r known_rps known_p99 known_bad <<< "$(checkin_run "$addr" "$key" "$small_fleet" known)"
    known_cpu=$(per_check_in $(($(cpu_ticks "$pid") - cpu0)) "$(requests_done)")
    row "$backend: check-in, known devices: the server's CPU per check-in" "$known_cpu" "-"
    row "$backend: check-in, known devices (10k fleet), vs the server's /healthz ≥ 25%" "$known_rps req/s ($(ratio "$known_rps" "$bare_rps"))" "$(at_least "$known_rps" "$(awk -v b="$bare_rps" 'BEGIN { print b / 4 }')")"
    if [ "$backend" = sqlite ]; then
        row "sqlite: check-in, known devices, vs plain axum ≥ 50%" "$known_rps req/s ($(ratio "$known_rps" "$axum_rps"))" "$(at_least "$known_rps" "$(awk -v b="$axum_rps" 'BEGIN { print b / 2 }')")"
        row "sqlite: check-in, known devices, p99 at $connections connections ≤ 10 ms" "$known_p99 ms" "$(at_most "$known_p99" 10)"
    else
        row "$backend: check-in, known devices, vs plain axum" "$(ratio "$known_rps" "$axum_rps")" "-"
        row "$backend: check-in, known devices, p99 at $connections connections ≤ 20 ms" "$known_p99 ms" "$(at_most "$known_p99" 20)"
    fi
    read -r new_rps new_p99 new_bad <<< "$(checkin_run "$addr" "$key" 0 new)"
    small_url=$small floating "$backend" "$addr" "$key"
    stop_server "$pid"
    [ "$known_bad$new_bad" = 00 ] || row "$backend: non-2xx answers under load" "$known_bad known, $new_bad new" "NOT met"

    # The plain design, measured in the same run: one transaction per check-in.
    read -r pid _ <<< "$(start_server "$small" "$addr" SEATKEEPER_CHECKIN_GROUP_MAX=1)"
    read -r plain_rps plain_p99 _ <<< "$(checkin_run "$addr" "$key" 0 new)"
    stop_server "$pid"
    row "$backend: check-in, new devices, vs one transaction each ($plain_rps req/s, p99 $plain_p99 ms) ≥ 10×" \
        "$new_rps req/s ($(awk -v a="$new_rps" -v b="$plain_rps" 'BEGIN { printf "%.1f×", a / b }'), p99 $new_p99 ms)" \
        "$(at_least "$new_rps" "$(awk -v b="$plain_rps" 'BEGIN { print 10 * b }')")"

    if [ "$backend" = postgres ]; then
        # Two server processes on one database against one, same client load
        # (two wrk of half the connections each), in alternating rounds so
        # that the machine's drift falls on both alike.
        read -r pid _ <<< "$(start_server "$small" "$addr")"
        read -r pid2 _ <<< "$(start_server "$small" "$addr2")"
        local one two ones=() twos=() ratios=()
        for _ in $(seq 1 "$rounds"); do
            checkin_run "$addr" "$key" "$small_fleet" known $((connections / 2)) > "$work/one-a" &
            checkin_run "$addr" "$key" "$small_fleet" known $((connections / 2)) > "$work/one-b"; wait $!
            one=$(cat "$work/one-a" "$work/one-b" | awk '{ s += $1 } END { print s }')
            checkin_run "$addr" "$key" "$small_fleet" known $((connections / 2)) > "$work/two-a" &
            checkin_run "$addr2" "$key" "$small_fleet" known $((connections / 2)) > "$work/two-b"; wait $!
            two=$(cat "$work/two-a" "$work/two-b" | awk '{ s += $1 } END { print s }')
            ones+=("$one"); twos+=("$two"); ratios+=("$(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2f", a / b }')")
        done
        stop_server "$pid"; stop_server "$pid2"
        local mid; mid=$(median "${ratios[@]}")
        row "postgres: known check-ins, two processes vs one ≥ 1× (median of $rounds rounds)" \
            "${mid}× (one: ${ones[*]} req/s; two: ${twos[*]})" "$(at_least "$mid" 1)"
    fi

    local small_key=$key
    key=$(seed "$big" "$big_fleet")
    local learnt_before; learnt_before=$(learnt)
    read -r pid startup <<< "$(start_server "$big" "$addr")"
    row "$backend: start-up with $big_fleet devices ≤ 2 s" "$startup s" "$(at_most "$startup" 2)"
    if [ "$backend" = sqlite ]; then
        # The server serves at once and learns beside it which devices hold
        # seats (server/store/src/known.rs); the load starts once it has.
        until_learnt "$learnt_before"
        row "sqlite: learning which of $big_fleet devices hold seats, beside serving" \
            "$(grep "learnt which devices hold seats" "$work/server.err" | tail -n 1 | grep -o 'seconds=[0-9.]*' | cut -c9-13) s" "-"
    fi
    # Known check-ins in the 1M fleet against the 10k one (its server started
    # beside this one), in alternating rounds so that the machine's drift
    # falls on both alike; each round's ratio is 10k over 1M.
    local pid_small big_rps small_rps bigs=() smalls=() slowers=()
    learnt_before=$(learnt)
    read -r pid_small _ <<< "$(start_server "$small" "$addr2")"
    [ "$backend" = postgres ] || until_learnt "$learnt_before"
    for _ in $(seq 1 "$rounds"); do
        read -r small_rps _ <<< "$(checkin_run "$addr2" "$small_key" "$small_fleet" known)"
        read -r big_rps _ <<< "$(checkin_run "$addr" "$key" "$big_fleet" known)"
        smalls+=("$small_rps"); bigs+=("$big_rps"); slowers+=("$(awk -v a="$small_rps" -v b="$big_rps" 'BEGIN { printf "%.2f", a / b }')")
    done
    stop_server "$pid_small"
    local slower; slower=$(median "${slowers[@]}")
    row "$backend: known check-ins, $big_fleet-device fleet vs 10k: within 1.2× (median of $rounds rounds)" \
        "${slower}× slower (1M: ${bigs[*]} req/s; 10k: ${smalls[*]})" "$(at_most "$slower" 1.2)"
    local rss; rss=$(rss_mb "$pid")
    row "$backend: resident memory with $big_fleet devices ≤ 150 MB" "$rss MB" "$(at_most "$rss" 150)"

    local cookie; cookie=$(session_cookie "$addr")
    [ -n "$cookie" ] || { echo "could not sign in" >&2; exit 1; }
    local page ms
    for page in "Devices, first page|/devices" \
                "Devices, deep page|/devices?after=BENCH-0900000" \
                "Devices, serial search (no match: the worst case)|/devices?q=NO-SUCH-SERIAL" \
                "Devices, serial search (one match)|/devices?q=0123456" \
                "Licenses|/" \
                "Product, $holders holders|/products/office"; do
        ms=$(p95 "http://$addr${page#*|}" -H "Cookie: $cookie")
        row "$backend: ${page%|*} at $big_fleet devices, p95 ≤ 50 ms" "$ms ms" "$(at_most "$ms" 50)"
    done
    stop_server "$pid"
}

echo "Seatkeeper benchmark: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), wrk -t1 -c$connections -d${duration}s" >&2

backends=${SK_BACKENDS:-sqlite postgres}
if [[ " $backends " == *" sqlite "* ]]; then
    fleet sqlite "sqlite://$work/small.db" "sqlite://$work/big.db"
fi

if [[ " $backends " != *" postgres "* ]]; then
    :
elif psql "$pg_admin" -qc "select 1" >/dev/null 2>&1; then
    for db in seatkeeper_bench_small seatkeeper_bench_big; do
        psql "$pg_admin" -qc "drop database if exists $db with (force)" -c "create database $db" >/dev/null
    done
    fleet postgres "${pg_admin%/*}/seatkeeper_bench_small" "${pg_admin%/*}/seatkeeper_bench_big"
    for db in seatkeeper_bench_small seatkeeper_bench_big; do
        psql "$pg_admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
    done
else
    echo "postgres: skipped, no server at $pg_admin" >&2
fi

if [ -f "$wasm" ]; then
    gz=$(gzip -9c "$wasm" | wc -c)
    row "hydration bundle, gzip ≤ 150 KB" "$((gz / 1024)) KB ($(wc -c < "$wasm") bytes raw)" "$(at_most "$gz" 153600)"
fi

echo
echo "| target | measured | |"
echo "|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$results"
