#!/usr/bin/env bash
# Builds the benchmarks in Release (build-bench/) and runs them; extra arguments go to Google Benchmark.
#
# Usage: scripts/bench.sh [--benchmark_filter=REGEX] [--benchmark_repetitions=N] ...
#        scripts/bench.sh --snapshot-stall [KEYS]   # bench/fsm_snapshot_stall instead
# Numbers are only comparable on the same machine kind with nothing else running.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=2

scripts/setup.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DCKV_BENCH=ON -DCKV_SANITIZE=OFF
if [[ ! -d build-bench/bench ]]; then
  echo "bench.sh: Google Benchmark not found (libbenchmark-dev); bench/ was not configured" >&2
  exit 1
fi
if [[ ${1:-} == --snapshot-stall ]]; then
  shift
  cmake --build build-bench -j "$jobs" --target fsm_snapshot_stall
  exec build-bench/bench/fsm_snapshot_stall "$@"
fi
cmake --build build-bench -j "$jobs" --target raft_core_bench
exec build-bench/bench/raft_core_bench --benchmark_counters_tabular=true "$@"
