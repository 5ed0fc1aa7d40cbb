#!/usr/bin/env bash
# Runs every citysoc test on a fresh machine: installs what the tests need, then runs the unit,
# golden, property and integration tests of every crate, and each benchmark once in test mode
# (so a broken bench fails here, not when someone measures).
#
# Environment:
#   CITYSOC_SIGMA_PACK  path of a SigmaHQ rule snapshot; tests that need it say plainly when
#                       it is missing that they did not run.
#   CARGO_TARGET_DIR    reuse a build directory between runs (optional).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
    echo "citysoc tests need a Rust toolchain (cargo); install it with rustup first" >&2
    exit 1
fi

echo "== clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (workspace, all targets)"
cargo test --workspace --all-targets --locked
echo "== doc tests"
cargo test --workspace --doc --locked
