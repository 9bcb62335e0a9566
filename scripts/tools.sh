# Sourced by the other scripts: each `ensure_*` installs one build or test
# tool when it is missing (or at the wrong version) and is quick when it is
# there. Every long step names itself and how long it takes on two cores.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

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
ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        say "adding the wasm32-unknown-unknown target (about 30 s)"
        rustup target add wasm32-unknown-unknown
    fi
}

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in
# Cargo.lock. It goes under $SEATKEEPER_TOOLS/bin, with a cargo home of its
# own: scripts/build.sh installs it while the server builds, and a build holds
# the usual cargo home's package cache, where `cargo install` would wait for
# the build to end. A build tool runs once per build on a small file, so it is
# compiled for a quick install (opt-level 1, no LTO) rather than top speed.
ensure_wasm_bindgen() {
    local version
    version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
    if [ "$("$SEATKEEPER_TOOLS/bin/wasm-bindgen" --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
        say "installing wasm-bindgen-cli $version, the version in Cargo.lock (about 3 minutes, once per machine)"
        CARGO_HOME=$SEATKEEPER_TOOLS/cargo-home \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
            cargo install wasm-bindgen-cli --version "$version" --root "$SEATKEEPER_TOOLS" --force --quiet
    fi
}

# From npm, under $SEATKEEPER_TOOLS: wasm-opt (binaryen 132; Debian's 108
# writes bundles browsers refuse) and esbuild, which minifies the bundle's
# JavaScript and the CSS. Both are prebuilt binaries: seconds to install.
ensure_npm_tools() {
    command -v npm >/dev/null || { say "installing Node.js and npm (Debian)"; apt_install nodejs npm; }
    if [ "$("$SEATKEEPER_TOOLS/node_modules/.bin/wasm-opt" --version 2>/dev/null || true)" != "wasm-opt version $BINARYEN_VERSION (version_$BINARYEN_VERSION)" ] ||
       [ "$("$SEATKEEPER_TOOLS/node_modules/.bin/esbuild" --version 2>/dev/null || true)" != "$ESBUILD_VERSION" ]; then
        say "installing wasm-opt (npm binaryen $BINARYEN_VERSION) and esbuild $ESBUILD_VERSION (npm)"
        mkdir -p "$SEATKEEPER_TOOLS"
        npm install --silent --no-audit --no-fund --prefix "$SEATKEEPER_TOOLS" \
            "binaryen@$BINARYEN_VERSION.0.0" "esbuild@$ESBUILD_VERSION" >/dev/null
    fi
}

# Schemathesis (PyPI), which the test command runs against the API, in a
# virtual environment of its own.
ensure_schemathesis() {
    local version=4.32.5
    if [ "$("$SEATKEEPER_TOOLS/schemathesis/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $version" ]; then
        say "installing Schemathesis $version (PyPI, about a minute)"
        command -v python3 >/dev/null || apt_install python3 python3-venv
        python3 -m venv "$SEATKEEPER_TOOLS/schemathesis" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$SEATKEEPER_TOOLS/schemathesis"; }
        "$SEATKEEPER_TOOLS/schemathesis/bin/pip" install --quiet "schemathesis==$version"
    fi
}

# Debian's Chromium and npm's playwright-core (which cannot download
# browsers here, and does not need to).
ensure_browser() {
    if [ ! -x /usr/bin/chromium ]; then
        say "installing Chromium for the browser tests (Debian, about a minute)"
        apt_install chromium
    fi
    if [ ! -d end2end/node_modules/playwright-core ]; then
        say "installing playwright-core for the browser tests (npm)"
        (cd end2end && npm ci --silent --no-audit --no-fund)
    fi
}

# cargo-leptos, for the development loop (`cargo leptos watch`) only: the
# run and test commands build without it. Its own release profile (lto =
# true, codegen-units = 1) takes about 24 minutes on two cores; a build tool
# does not need that much optimising.
ensure_cargo_leptos() {
    if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos 0.3.5" ]; then
        say "installing cargo-leptos 0.3.5 (about 10 minutes, once per machine)"
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
            cargo install cargo-leptos --version 0.3.5 --locked
    fi
}
