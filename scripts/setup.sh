#!/usr/bin/env bash
# Installs what building and testing Seatkeeper needs, each piece only when it
# is missing: the wasm32 target, cargo-leptos 0.3.5, wasm-bindgen-cli at the
# version in Cargo.lock, wasm-opt (npm's binaryen), and with --browser-tests
# Debian's Chromium and npm's playwright-core. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        say "need root to install Debian packages: $*"; exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -qq >/dev/null
        export APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# rust-toolchain.toml pins the toolchain; make sure it also has the WASM target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos 0.3.5" ]; then
    # Its own release profile (lto = true, codegen-units = 1) takes about 24
    # minutes on two cores; a build tool does not need that much optimising.
    say "installing cargo-leptos 0.3.5 (about 10 minutes, once per machine)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install cargo-leptos --version 0.3.5 --locked
fi

wasm_bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wasm_bindgen_version" ]; then
    say "installing wasm-bindgen-cli $wasm_bindgen_version (the version in Cargo.lock)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo install wasm-bindgen-cli --version "$wasm_bindgen_version" --force
fi

command -v npm >/dev/null || apt_install nodejs npm

# wasm-opt from npm's binaryen 132 (Debian's 108 writes bundles browsers refuse),
# in a folder of its own that scripts/env.sh puts first on PATH.
if [ "$("$SEATKEEPER_TOOLS/node_modules/.bin/wasm-opt" --version 2>/dev/null || true)" != "wasm-opt version $BINARYEN_VERSION (version_$BINARYEN_VERSION)" ]; then
    say "installing wasm-opt (npm binaryen $BINARYEN_VERSION)"
    mkdir -p "$SEATKEEPER_TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$SEATKEEPER_TOOLS" "binaryen@$BINARYEN_VERSION.0.0" >/dev/null
fi

# Schemathesis (PyPI), which the test command runs against the API, in a
# virtual environment of its own.
SCHEMATHESIS_VERSION=4.32.5
if [ "$("$SEATKEEPER_TOOLS/schemathesis/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    say "installing Schemathesis $SCHEMATHESIS_VERSION (PyPI)"
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv "$SEATKEEPER_TOOLS/schemathesis" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$SEATKEEPER_TOOLS/schemathesis"; }
    "$SEATKEEPER_TOOLS/schemathesis/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

# With --browser-tests: Debian's Chromium and npm's playwright-core (which
# cannot download browsers here, and does not need to).
[ "${1:-}" = "--browser-tests" ] || exit 0
if [ ! -x /usr/bin/chromium ]; then
    say "installing Chromium for the browser tests"
    apt_install chromium
fi
if [ ! -d end2end/node_modules/playwright-core ]; then
    say "installing playwright-core for the browser tests"
    (cd end2end && npm ci --silent --no-audit --no-fund)
fi
