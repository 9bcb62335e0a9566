# Sourced by the other scripts: where Seatkeeper's build tools live.
export SEATKEEPER_TOOLS=${SEATKEEPER_TOOLS:-$HOME/.cache/seatkeeper-tools}
# wasm-opt comes from npm's binaryen at this major version (see scripts/setup.sh).
export BINARYEN_VERSION=132
export PATH="$SEATKEEPER_TOOLS/node_modules/.bin:$HOME/.cargo/bin:$PATH"
