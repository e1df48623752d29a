#!/usr/bin/env bash
# The run command: installs packages, builds kvnode, and runs a local 3-node cluster until Ctrl-C.
#
# Usage: scripts/run.sh
#   environment: CKV_RAFT_PORT (default 5000) and CKV_API_PORT (default 8000) are
#   the first node's ports; nodes 2 and 3 use the next two. CKV_RUN_DIR (default
#   ./run-data) holds one data dir per node, kept between runs: running again
#   resumes the same cluster (the same commands, -bootstrap included).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

raft_port=${CKV_RAFT_PORT:-5000}
api_port=${CKV_API_PORT:-8000}
run_dir=${CKV_RUN_DIR:-$PWD/run-data}

echo "== setup =="
scripts/setup.sh

echo "== build (build/, RelWithDebInfo) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j 2 --target kvnode

mkdir -p "$run_dir"
pids=()
stop_all() {
  echo
  echo "== stopping (SIGTERM: the leader hands over before exiting) =="
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; data kept in $run_dir"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

start_node() {  # n, extra flags...
  local n=$1
  shift
  local rp=$((raft_port + n - 1)) ap=$((api_port + n - 1))
  build/kvnode -id "node$n" -raft-address "127.0.0.1:$rp" -api-address "127.0.0.1:$ap" \
    -data-dir "$run_dir/node$n" "$@" 2>>"$run_dir/node$n.log" &
  pids+=($!)
  echo "node$n: raft 127.0.0.1:$rp, api http://127.0.0.1:$ap, data $run_dir/node$n, log $run_dir/node$n.log (pid $!)"
}

wait_ready() {  # api port: until /status answers and shows a leader
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://127.0.0.1:$1/status" 2>/dev/null | grep -q '"leader":"[^"]'; do
    if ((SECONDS > deadline)); then
      echo "node on port $1 did not find a leader within 30 s; see the logs in $run_dir" >&2
      return 1
    fi
    sleep 0.2
  done
}

echo "== starting a 3-node cluster =="
start_node 1 -bootstrap=true
wait_ready "$api_port"
start_node 2 -join "127.0.0.1:$api_port"
start_node 3 -join "127.0.0.1:$api_port"
wait_ready $((api_port + 1))
wait_ready $((api_port + 2))

cat <<MSG

== consensuskv is running: 3 nodes ==
Try (any node answers; followers forward writes to the leader):

  curl -X POST http://127.0.0.1:$api_port/set -H 'Content-Type: application/json' -d '{"key":"foo","value":"bar"}'
  curl 'http://127.0.0.1:$((api_port + 1))/get?key=foo'
  curl 'http://127.0.0.1:$((api_port + 2))/get?key=foo&consistency=stale'
  curl -X POST http://127.0.0.1:$((api_port + 1))/delete -d '{"key":"foo"}'
  curl http://127.0.0.1:$api_port/status

Ctrl-C stops the cluster cleanly.
MSG
wait
