#!/usr/bin/env bash
# Builds Seatkeeper (release) and serves it on SQLite at http://127.0.0.1:3000,
# with the data in ./data/. Arguments go to the server, e.g. --addr 0.0.0.0:8080.
# On a fresh machine scripts/build.sh first installs the build tools it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec "${CARGO_TARGET_DIR:-target}/release/seatkeeper" serve "$@"
