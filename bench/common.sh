# Sourced by the benchmark scripts (which set $bin, the release server).

# An organization "bench" with products "bench" (two million seats,
# auto-assign) and "office" ($holders seats, all held by the first $holders
# devices), and $devices devices BENCH-0000000… that all hold "bench". The
# organization's keys go to $org_json; echoes its product key.
seed_fleet() { # url devices holders org_json
    local url=$1 devices=$2 holders=$3 org_json=$4
    DATABASE_URL=$url "$bin" org create bench --json > "$org_json"
    DATABASE_URL=$url "$bin" product add --org bench --code bench --name Bench --seats 2000000 --auto-assign > /dev/null
    DATABASE_URL=$url "$bin" product add --org bench --code office --name Office --seats "$holders" > /dev/null
    case $url in
        sqlite://*) python3 bench/seed_sqlite.py "${url#sqlite://}" "$devices" "$holders" ;;
        postgres://*) psql -q "$url" -v devices="$devices" -v holders="$holders" -f bench/seed_postgres.sql > /dev/null ;;
    esac
    grep -o 'sk_prod_[0-9a-f]*' "$org_json" | head -n 1
}

# Waits (at most 3 s) until the server at ADDR answers.
until_serving() { for _ in $(seq 1 300); do curl -sf "http://$1/healthz" > /dev/null && return; sleep 0.01; done; }

# CPU TICKS spread over N check-ins, in µs each.
per_check_in() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f µs", 1e6 * t / hz / n }'; }

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# CPU ticks (utime + stime) of processes, summed.
cpu_ticks() { for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null; done | awk '{ s += $1 } END { print s + 0 }'; }

# The administration key in an `org create --json` output file.
admin_key_in() { grep -o 'sk_admin_[0-9a-f]*' "$1" | head -n 1; } # file

# Signs in through the sign-in form, as a browser posts it (from a page of
# this site); echoes the session cookie (name=value).
sign_in() { # addr admin-key
    local at=$1 key=$2 action
    action=$(curl -sf "http://$at/" | grep -o 'action="/api/[^"]*"' | head -n 1 | sed 's/action="//; s/"$//')
    curl -s -o /dev/null -D - -X POST "http://$at$action" -H "Origin: http://$at" \
        --data-urlencode "key=$key" --data-urlencode "next=/" |
        awk -F'[:;]' 'tolower($1) == "set-cookie" { gsub(/^ /, "", $2); print $2; exit }'
}
