#!/usr/bin/env bash
# Syscalls per write on the leader: a 3-node cluster under a 1-connection write load, the leader traced with strace -c.
#
# Usage: bench/write_syscalls.sh [--kvnode PATH] [--duration SECONDS] [--connections N]
# Prints the writes wrk completed, then fdatasync, fsync, write and pwrite
# calls per write on the leader (all of its threads). strace slows the
# traced process, so read the counts, not the throughput. Every process it
# starts is killed by PID; the temp dir is removed.
set -euo pipefail
kvnode=build/kvnode
duration=5
conns=1
while (($#)); do
  case $1 in
    --kvnode) kvnode=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    *) sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[[ $kvnode == /* ]] || kvnode=$PWD/$kvnode
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d /var/tmp/ckv-syscalls.XXXXXX)  # on disk, not tmpfs: fdatasync must mean something
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do { wait "$p"; } 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
read -r -a ports < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
ports = [s.getsockname()[1] for s in socks]
for s in socks: s.close()
print(" ".join(map(str, ports)))')
for n in 1 2 3; do
  extra=(-join="127.0.0.1:${ports[3]}")
  ((n == 1)) && extra=(-bootstrap=true)
  "$kvnode" -id="n$n" -raft-address="127.0.0.1:${ports[n - 1]}" -api-address="127.0.0.1:${ports[n + 2]}" \
    -data-dir="$tmp/n$n" "${extra[@]}" >"$tmp/n$n.log" 2>&1 &
  pids+=($!)
  if ((n == 1)); then
    until curl -fsS "http://127.0.0.1:${ports[3]}/status" 2>/dev/null | grep -q '"isLeader":true'; do sleep 0.1; done
  fi
done
until [[ $(curl -fsS "http://127.0.0.1:${ports[3]}/status" | grep -o '"voter"' | wc -l) -ge 3 ]] 2>/dev/null; do sleep 0.2; done
api="http://127.0.0.1:${ports[3]}"
wrk -t1 -c"$conns" -d2s -s bench/wrk/set.lua "$api" -- warm >/dev/null  # warm-up
leader=${pids[0]}
# -p attaches every thread of the process; -f follows threads started later.
strace -c -f -e trace=fdatasync,fsync,write,pwrite64,pwritev,writev -p "$leader" -o "$tmp/strace.txt" 2>/dev/null &
spid=$!
sleep 0.5
out=$(wrk -t1 -c"$conns" -d"${duration}s" -s bench/wrk/set.lua "$api" -- m)
kill -INT "$spid"; wait "$spid" 2>/dev/null || true
writes=$(awk '/requests in/ {print $1}' <<<"$out")
echo "writes: $writes in ${duration}s at $conns connection(s) (traced leader, $kvnode)"
awk -v w="$writes" '$NF ~ /^(fdatasync|fsync|write|pwrite64|pwritev|writev)$/ {
  printf "%-10s %8d calls  %.2f per write\n", $NF, $4, $4 / w }' "$tmp/strace.txt"
