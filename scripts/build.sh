#!/usr/bin/env bash
# Builds what `seatkeeper serve` runs: the release server and the site folder
# (the hydration bundle and the CSS, in ${LEPTOS_SITE_ROOT:-target/site}/pkg),
# installing the build tools it lacks first. It does what `cargo leptos build
# --release` does, with the same settings and target folders, so the two share
# their caches; cargo-leptos stays the development loop (`cargo leptos watch`,
# scripts/setup.sh --dev) but is not needed to build, run or test.
#
# The server and the bundle are built side by side: each cargo build has
# stretches that keep one core busy (a big crate, the link), and on two cores
# the other build fills them. Their output is prefixed [server] and [bundle].
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

target=${CARGO_TARGET_DIR:-target}
site=${LEPTOS_SITE_ROOT:-target/site}
pkg=$site/${LEPTOS_SITE_PKG_DIR:-pkg}
started=$SECONDS

ensure_wasm_target
ensure_npm_tools

# What cargo-leptos tells the builds (LEPTOS_OUTPUT_NAME decides the bundle's
# file names in the pages' <link> and <script> tags).
leptos_env=(
    LEPTOS_OUTPUT_NAME=seatkeeper LEPTOS_SITE_ROOT="$site" LEPTOS_SITE_PKG_DIR="${pkg##*/}"
    LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=frontend LEPTOS_BIN_DIR=server
    LEPTOS_JS_MINIFY=true LEPTOS_HASH_FILES=false
)

build_server() {
    env "${leptos_env[@]}" cargo build --locked --release --package seatkeeper --bin seatkeeper --no-default-features
}

build_bundle() {
    # wasm-bindgen-cli installs while the WebAssembly compiles.
    ensure_wasm_bindgen & local tool=$!
    env "${leptos_env[@]}" cargo build --locked --package frontend --lib --target wasm32-unknown-unknown \
        --profile wasm-release --target-dir "$target/front" --no-default-features
    wait "$tool"

    local stage; stage=$(mktemp -d)
    wasm-bindgen --target web --no-typescript --out-name seatkeeper --out-dir "$stage" \
        "$target/front/wasm32-unknown-unknown/wasm-release/frontend.wasm"
    # The file names Leptos' <HydrationScripts> asks for.
    mv "$stage/seatkeeper_bg.wasm" "$stage/seatkeeper.wasm"
    # The wasm-opt flags are Cargo.toml's, which cargo-leptos reads too.
    local features
    features=$(python3 -c 'import tomllib; print(" ".join(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["metadata"]["leptos"][0]["wasm-opt-features"]))')
    # shellcheck disable=SC2086
    wasm-opt $features "$stage/seatkeeper.wasm" -o "$stage/seatkeeper.wasm"
    esbuild --log-level=warning --minify --format=esm "$stage/seatkeeper.js" --outfile="$stage/seatkeeper.min.js"
    mkdir -p "$pkg"
    mv "$stage/seatkeeper.wasm" "$pkg/seatkeeper.wasm"
    mv "$stage/seatkeeper.min.js" "$pkg/seatkeeper.js"
    rm -rf "$stage"
}

# The browsers of browserslist's "defaults" (what cargo-leptos targets) that
# esbuild knows by name.
build_style() {
    mkdir -p "$pkg"
    # A CSS syntax error fails the build rather than drop rules quietly.
    esbuild --log-level=warning --log-override:css-syntax-error=error --minify \
        --target=chrome109,edge109,firefox115,safari15.6,ios15.6 style/main.css --outfile="$pkg/seatkeeper.css"
    cp -R public/. "$site/"
}

# The gzip and brotli copies the server sends to browsers that accept them
# (Node's zlib has both, at their best levels: this runs once per build).
compress_pkg() {
    node -e '
        const fs = require("fs"), zlib = require("zlib");
        for (const file of process.argv.slice(1)) {
            const data = fs.readFileSync(file);
            fs.writeFileSync(file + ".gz", zlib.gzipSync(data, { level: 9 }));
            fs.writeFileSync(file + ".br", zlib.brotliCompressSync(data, { params: {
                [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }));
        }' "$pkg/seatkeeper.js" "$pkg/seatkeeper.wasm" "$pkg/seatkeeper.css"
}

prefixed() { # NAME COMMAND...: runs COMMAND with its output prefixed [NAME]
    local name=$1; shift
    ( set -o pipefail; "$@" 2>&1 | sed -u "s/^/[$name] /" )
}

if [ ! -x "$target/release/seatkeeper" ]; then
    say "building the release server and the hydration bundle side by side (a first build: about 12 minutes on two cores)"
else
    say "building the release server and the hydration bundle"
fi
# Each job runs in the background, where `set -e` still stops it at its first
# failure (in an `a || b` it would not).
prefixed bundle build_bundle & bundle=$!
prefixed server build_server & server=$!
server_status=0; wait "$server" || server_status=$?
bundle_status=0; wait "$bundle" || bundle_status=$?
[ "$server_status" -eq 0 ] || { say "the server's build failed (its output is above, marked [server])"; exit 1; }
[ "$bundle_status" -eq 0 ] || { say "the hydration bundle's build failed (its output is above, marked [bundle])"; exit 1; }
build_style
compress_pkg
say "built in $((SECONDS - started)) s: $target/release/seatkeeper and $pkg/"
