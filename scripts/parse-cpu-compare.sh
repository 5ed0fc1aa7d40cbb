#!/usr/bin/env bash
# Records per CPU-second of two builds of the parse driver, run alternately (what BENCHMARKS.md
# calls `/tmp/cmp.sh`): perf's task-clock does not count time spent waiting for a core, so on a
# shared, noisy machine the ratio between the two builds holds where wall-clock figures do not.
#
#   cargo build --release -p citysoc-collector --example parse_cpu   # once per build, copied aside
#   scripts/parse-cpu-compare.sh CASE ROUNDS RUNS BUILD_A BUILD_B
#   taskset -c 1 scripts/parse-cpu-compare.sh firewall 300 6 /tmp/parse_cpu.before /tmp/parse_cpu.after
#
# CASE and ROUNDS are parse_cpu's arguments (1,000 records a round). Prints each build's best
# and median over RUNS runs. Needs `perf` (Debian's linux-perf) and python3.
set -euo pipefail
if [ $# -ne 5 ]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
case_name=$1 rounds=$2 runs=$3 build_a=$4 build_b=$5
for _ in $(seq 1 "$runs"); do
    for build in "$build_a" "$build_b"; do
        ms=$(perf stat -x, -e task-clock "$build" "$case_name" "$rounds" 2>&1 >/dev/null | grep task-clock | cut -d, -f1) || true
        if ! [[ "$ms" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
            echo "no task-clock from perf for $build $case_name $rounds (is perf installed and allowed? the build runs?)" >&2
            exit 1
        fi
        echo "$build $(python3 -c "print(int($rounds * 1000 / ($ms / 1000)))")"
    done
done | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    build, value = line.split()
    runs.setdefault(build, []).append(int(value))
for build, values in runs.items():
    print(f"{build}: best {max(values):,} median {int(statistics.median(values)):,} n={len(values)}")
'
