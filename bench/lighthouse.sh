#!/usr/bin/env bash
# The screens in a real browser: Lighthouse (npm lighthouse 12.2.3, with
# Debian's Chromium, headless) on the Licenses, Product, Devices and Device
# screens of a SQLite fleet of a million devices, signed in, with the desktop
# preset and the mobile one (Lighthouse's default: a mid-range phone on a slow
# 4G network, simulated). Prints per screen and preset the performance,
# accessibility and best-practices scores and the largest contentful paint,
# then a Markdown table of them.
#   [SK_BIG_FLEET=1000000] bench/lighthouse.sh
# SK_KEEP=1 keeps the work folder (each report's JSON) and prints where it is.
# Needs the release build (scripts/build.sh); installs Lighthouse under
# $SEATKEEPER_TOOLS and Chromium (Debian) when missing. A measurement, not a
# test: targets are performance ≥ 95, accessibility 100, best practices ≥ 95.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
bin=${CARGO_TARGET_DIR:-target}/release/seatkeeper
devices=${SK_BIG_FLEET:-1000000}
holders=100000
addr=127.0.0.1:3970
[ -x "$bin" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }
source bench/common.sh

LIGHTHOUSE_VERSION=12.2.3
lighthouse=$SEATKEEPER_TOOLS/lighthouse/node_modules/.bin/lighthouse
if [ "$("$lighthouse" --version 2>/dev/null || true)" != "$LIGHTHOUSE_VERSION" ]; then
    say "installing Lighthouse $LIGHTHOUSE_VERSION (npm)"
    mkdir -p "$SEATKEEPER_TOOLS/lighthouse"
    npm install --silent --no-audit --no-fund --prefix "$SEATKEEPER_TOOLS/lighthouse" "lighthouse@$LIGHTHOUSE_VERSION" >/dev/null
fi
[ -x /usr/bin/chromium ] || { say "installing Chromium (Debian)"; apt_install chromium; }

work=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -n "${SK_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

say "seeding $devices devices (SQLite)"
url=sqlite://$work/lighthouse.db
seed_fleet "$url" "$devices" "$holders" "$work/org.json" > /dev/null
admin=$(admin_key_in "$work/org.json")
DATABASE_URL=$url RUST_LOG=warn "$bin" serve --addr "$addr" > "$work/server.log" 2>&1 &
pid=$!
until_serving "$addr"
cookie=$(sign_in "$addr" "$admin")
[ -n "$cookie" ] || { echo "could not sign in" >&2; exit 1; }

results=$work/results
: > "$results"
for screen in "Licenses|/" "Product|/products/office" "Devices|/devices" "Device|/devices/BENCH-0000042"; do
    for preset in desktop mobile; do
        name=${screen%|*}; path=${screen#*|}
        flags=()
        [ "$preset" = desktop ] && flags+=(--preset=desktop)
        CHROME_PATH=/usr/bin/chromium "$lighthouse" "http://$addr$path" "${flags[@]}" --quiet \
            --only-categories=performance,accessibility,best-practices \
            --extra-headers="{\"Cookie\": \"$cookie\"}" \
            --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run --user-data-dir=$work/chrome" \
            --output=json --output-path="$work/$name-$preset.json" 2> "$work/$name-$preset.err" ||
            { echo "Lighthouse failed on $path ($preset):" >&2; tail -n 20 "$work/$name-$preset.err" >&2; exit 1; }
        node -e '
            const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
            const score = (c) => Math.round(100 * r.categories[c].score);
            const failed = Object.values(r.audits).filter((a) => a.score !== null && a.score < 1 && a.scoreDisplayMode === "binary").map((a) => a.id);
            console.log([process.argv[2], process.argv[3], score("performance"), score("accessibility"), score("best-practices"),
                (r.audits["largest-contentful-paint"].numericValue / 1000).toFixed(2) + " s", failed.join(" ")].join("\t"));
        ' "$work/$name-$preset.json" "$name" "$preset" | tee -a "$results" >&2
    done
done

echo
echo "Lighthouse $LIGHTHOUSE_VERSION, $(/usr/bin/chromium --version 2>/dev/null | head -n 1), $devices devices, signed in"
echo
echo "| screen | preset | performance | accessibility | best practices | largest contentful paint | binary audits not passed |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$results"
