#!/usr/bin/env bash
# Runs every citysoc test on a fresh machine: installs what the tests need, then runs clippy,
# the unit, golden, property and integration tests of every crate, the doc tests, and each
# benchmark once in test mode (so a broken bench fails here, not when someone measures).
# Ends with one line totalling every test run: "tests: N passed, N failed".
#
# The ClickHouse store tests run against a server started here with scripts/clickhouse.sh
# (Debian's clickhouse-server, installed when missing) and stopped at the end.
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

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "== clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== doc tests"
cargo test --workspace --doc --locked 2>&1 | tee -a "$log"
echo "== unit, golden, property, integration tests and benches in test mode"
cargo test --workspace --all-targets --locked 2>&1 | tee -a "$log"

echo "== ClickHouse tests (a throwaway server from scripts/clickhouse.sh)"
clickhouse_dir="$(mktemp -d)"
trap 'scripts/clickhouse.sh stop "$clickhouse_dir" >/dev/null 2>&1 || true; rm -rf "$log" "$clickhouse_dir"' EXIT
if ! clickhouse_url="$(scripts/clickhouse.sh start "$clickhouse_dir")"; then
    echo "FAILED: scripts/clickhouse.sh could not start a ClickHouse server; the storage tests need one" >&2
    exit 1
fi
export CITYSOC_CLICKHOUSE_URL="$clickhouse_url"
cargo test -p citysoc-index --locked --test clickhouse_store --test conformance -- --ignored 2>&1 | tee -a "$log"
cargo test -p citysoc --locked --test cli_clickhouse -- --ignored 2>&1 | tee -a "$log"
scripts/clickhouse.sh stop "$clickhouse_dir"
unset CITYSOC_CLICKHOUSE_URL

echo "== SigmaHQ pack tests"
if [ -n "${CITYSOC_SIGMA_PACK:-}" ] && [ -d "${CITYSOC_SIGMA_PACK}" ]; then
    cargo test -p citysoc-detect --locked --test sigmahq_pack --test otrf_attacks -- --ignored 2>&1 | tee -a "$log"
else
    echo "NOT RUN: the SigmaHQ pack tests (sigmahq_pack, otrf_attacks) need CITYSOC_SIGMA_PACK=<path of a SigmaHQ snapshot>"
fi

passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
