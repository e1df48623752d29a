#!/usr/bin/env bash
# The run command: installs packages, builds, and runs what consensuskv can run today (the Raft simulator demo).
#
# Usage: scripts/run.sh [extra raft_sim arguments...]
#
# The kvnode server (Raft over TCP + HTTP API, see README.md) is the next
# milestone: it is being written and is not ready to run. Until it is, this
# runs the deterministic cluster simulator: a 5-node cluster of real Raft cores over a
# simulated network, disk and clock, for 20 seeds, checking the Raft safety
# invariants after every step. Extra arguments are passed to raft_sim.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=2
sim_bin=build/tests/sim/raft_sim

echo "== setup =="
scripts/setup.sh

echo "== build (build/, RelWithDebInfo) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$jobs" --target raft_sim

cat <<'EOF'

== consensuskv: simulator demo ==
NOTE: the kvnode server (Raft over TCP, HTTP API on -api-address) is the next
milestone; it is being written and is not ready to run yet. What runs today
is the Raft core under the deterministic simulator.

EOF

set -x
exec "$sim_bin" --seeds 20 --nodes 5 "$@"
