#!/usr/bin/env bash
# Installs tools, each only when it is missing; safe to run again and again.
# scripts/build.sh and scripts/test.sh install what they need by themselves;
# this is for installing ahead of time, or for the development loop:
#   scripts/setup.sh          the build tools: the wasm32 target, wasm-bindgen-cli
#                             at the version in Cargo.lock, wasm-opt and esbuild (npm)
#   scripts/setup.sh --tests  also Schemathesis (PyPI), Chromium (Debian) and
#                             playwright-core (npm)
#   scripts/setup.sh --dev    also cargo-leptos 0.3.5, for `cargo leptos watch`
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
ensure_wasm_target
ensure_npm_tools
ensure_wasm_bindgen
for arg in "$@"; do
    case $arg in
        --tests) ensure_schemathesis; ensure_browser ;;
        --dev) ensure_cargo_leptos ;;
        *) echo "usage: scripts/setup.sh [--tests] [--dev]" >&2; exit 2 ;;
    esac
done
