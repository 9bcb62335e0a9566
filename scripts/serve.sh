#!/usr/bin/env bash
# Builds Seatkeeper (release) and serves it on SQLite at http://127.0.0.1:3000,
# with the data in ./data/. Arguments go to the server, e.g. --addr 0.0.0.0:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
scripts/setup.sh
cargo leptos build --release
exec "${CARGO_TARGET_DIR:-target}/release/seatkeeper" serve "$@"
