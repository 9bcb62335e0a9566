# Sourced by the other scripts: where Seatkeeper's build tools live.
export SEATKEEPER_TOOLS=${SEATKEEPER_TOOLS:-$HOME/.cache/seatkeeper-tools}
# From npm, at these versions (scripts/tools.sh): wasm-opt is binaryen's, and
# esbuild minifies the bundle's JavaScript and the CSS.
export BINARYEN_VERSION=132
export ESBUILD_VERSION=0.28.2
# wasm-bindgen (cargo install --root) in bin/, wasm-opt and esbuild (npm) in
# node_modules/.bin/.
export PATH="$SEATKEEPER_TOOLS/bin:$SEATKEEPER_TOOLS/node_modules/.bin:$HOME/.cargo/bin:$PATH"
