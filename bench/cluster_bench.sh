#!/usr/bin/env bash
# Load benchmark of a real cluster: starts a fresh 3-node kvnode cluster on loopback and measures it with wrk.
#
# Usage: bench/cluster_bench.sh [--kvnode PATH] [--duration SECONDS] [--keys N] [--out FILE] [--peer-tls]
#   --kvnode PATH      kvnode binary (default: build/kvnode if present, else build-core/kvnode)
#   --duration SECONDS length of each measured load (default 10); each has a warm-up before it
#   --keys N           keys preloaded for the read loads (default 10000)
#   --out FILE         also write the results as JSON to FILE
#   --peer-tls         members talk mutual TLS (-peer-*, a CA made with openssl for this run)
# Prints one row per load (req/s, ratio to the GET /status baseline, p50/p99,
# errors), then the derived ratios, resident memory and a follower's restart
# time. Exits non-zero if the cluster does not come up or any request fails.
# The machine is shared: compare ratios within one run, not absolute numbers
# across runs (bench/README.md).
set -euo pipefail

usage() {
  sed -n '4,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

kvnode=
duration=10
keys=10000
out=
peer_tls=0
while (($#)); do
  case $1 in
    --kvnode) kvnode=${2:?--kvnode needs a path}; shift 2 ;;
    --kvnode=*) kvnode=${1#*=}; shift ;;
    --duration) duration=${2:?--duration needs a number of seconds}; shift 2 ;;
    --duration=*) duration=${1#*=}; shift ;;
    --keys) keys=${2:?--keys needs a number}; shift 2 ;;
    --keys=*) keys=${1#*=}; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --peer-tls) peer_tls=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "cluster_bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $duration =~ ^[1-9][0-9]*$ ]] || { echo "cluster_bench.sh: --duration must be a positive integer (seconds)" >&2; exit 2; }
[[ $keys =~ ^[1-9][0-9]*$ ]] || { echo "cluster_bench.sh: --keys must be a positive integer" >&2; exit 2; }

# Paths given on the command line are relative to where the user ran us, not
# to the repo root we move to.
[[ -z $kvnode || $kvnode == /* ]] || kvnode=$PWD/$kvnode
[[ -z $out || $out == /* ]] || out=$PWD/$out
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
if [[ -z $kvnode ]]; then
  kvnode=$repo/build/kvnode
  [[ -x $kvnode ]] || kvnode=$repo/build-core/kvnode
fi
[[ -x $kvnode ]] || { echo "cluster_bench.sh: no kvnode binary at $kvnode (build it, e.g. with scripts/run.sh, or pass --kvnode)" >&2; exit 1; }

# python3 only picks free ports (by binding them, as tests/integration/kvcluster.py does).
for tool in wrk curl python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "cluster_bench.sh: '$tool' not found; scripts/setup.sh installs it (Debian package $tool)" >&2
    exit 1
  fi
done

wrk_dir=$repo/bench/wrk
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckv-bench.XXXXXX")
pids=()       # kvnode PIDs by node number (1..3)
child_pid=    # the wrk or curl run in progress, so Ctrl-C can stop it too

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -z $child_pid ]] || kill -KILL "$child_pid" 2>/dev/null || true
  # SIGKILL rather than a graceful SIGTERM: the cluster's data is thrown
  # away, so a leadership handover on the way out would only cost time.
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" ${child_pid:+"$child_pid"}; do { wait "$p"; } 2>/dev/null || true; done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
  echo "cluster_bench.sh: $*" >&2
  for n in 1 2 3; do
    [[ -f $tmp/n$n.log ]] || continue
    echo "----- last lines of n$n's log -----" >&2
    tail -n 15 "$tmp/n$n.log" >&2
  done
  exit 1
}

# Below the kernel's ephemeral range when possible: ports from there (what
# binding port 0 returns) are also handed to outgoing connections, and this
# bench and anything else on the machine open thousands of those, so one
# could take a port between this check and kvnode's bind, or during the
# restart. Bound all at once so that the six differ.
read -r -a ports < <(python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
socks = []
for _ in range(1000):
    if len(socks) == 6:
        break
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, low) if low > 11000 else 0))
        socks.append(s)
    except OSError:
        s.close()
ports = [s.getsockname()[1] for s in socks]
for s in socks:
    s.close()  # before printing: kvnode may bind as soon as the line is read
print(" ".join(map(str, ports)))')
((${#ports[@]} == 6)) || die "found no free loopback ports"
# --peer-tls: one CA and one member certificate for 127.0.0.1 (all three
# members share the host, so they share the certificate; docs/security.md).
peer_tls_args=()
if ((peer_tls)); then
  command -v openssl >/dev/null || die "--peer-tls needs openssl (scripts/setup.sh installs it)"
  (cd "$tmp" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
      -days 2 -subj /CN=bench-ca &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout peer.key -out peer.csr \
      -subj /CN=peer &&
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >peer.ext &&
    openssl x509 -req -in peer.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out peer.crt -days 2 \
      -extfile peer.ext) >/dev/null 2>&1 || die "openssl could not make the peer certificates"
  peer_tls_args=(-peer-cert-file="$tmp/peer.crt" -peer-key-file="$tmp/peer.key" -peer-trusted-ca-file="$tmp/ca.crt")
fi
raft_addr=(- "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}")
api_addr=(- "127.0.0.1:${ports[3]}" "127.0.0.1:${ports[4]}" "127.0.0.1:${ports[5]}")

# The same command every time, also for the restart: -bootstrap is ignored
# once the data dir holds state, and -join of an existing member is a no-op.
start_node() {  # n
  local n=$1 extra=(-join="${api_addr[1]}")
  ((n == 1)) && extra=(-bootstrap=true)
  ((peer_tls)) && extra+=("${peer_tls_args[@]}")
  "$kvnode" -id="n$n" -raft-address="${raft_addr[n]}" -api-address="${api_addr[n]}" \
    -data-dir="$tmp/n$n" "${extra[@]}" >>"$tmp/n$n.log" 2>&1 &
  pids[n]=$!
}

status() {  # api address → /status JSON (fails when the node does not answer)
  curl -fsS --max-time 2 "http://$1/status" 2>/dev/null
}

json_field() {  # json name → value of a top-level string/number/bool field ("" if absent)
  if [[ $1 =~ \"$2\":(\"[^\"]*\"|[0-9]+|true|false) ]]; then
    local v=${BASH_REMATCH[1]}
    v=${v#\"}
    echo "${v%\"}"
  fi
}

applied_index() {  # api address → the node's appliedIndex, -1 if it does not answer
  local st v
  st=$(status "$1") || { echo -1; return; }
  v=$(json_field "$st" appliedIndex)
  echo "${v:--1}"
}

voters() {  # json → number of voters in members
  grep -o '"role":"voter"' <<<"$1" | wc -l
}

alive() {  # n
  kill -0 "${pids[$1]}" 2>/dev/null
}

node_of_api() {  # api address → node number
  local n
  for n in 1 2 3; do [[ ${api_addr[n]} == "$1" ]] && { echo "$n"; return; }; done
  return 1
}

# Sets leader and follower (node numbers) from what node 1..3 say.
find_leader() {
  local n st la
  leader='' follower=''
  for n in 1 2 3; do
    st=$(status "${api_addr[n]}") || continue
    la=$(json_field "$st" leaderApiAddress)
    [[ -n $la ]] && leader=$(node_of_api "$la") && break
  done
  [[ -n $leader ]] || die "no node knows a leader"
  for n in 1 2 3; do ((n != leader)) && { follower=$n; break; }; done
}

# Until every node has applied what the leader has committed, so that stale
# reads on a follower find every preloaded key.
wait_applied() {
  local commit n deadline=$((SECONDS + 30))
  commit=$(json_field "$(status "${api_addr[leader]}")" commitIndex)
  for n in 1 2 3; do
    until (($(applied_index "${api_addr[n]}") >= commit)); do
      ((SECONDS < deadline)) || die "n$n did not apply up to index $commit within 30 s"
      sleep 0.05
    done
  done
}

rss_kib() {  # pid
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# ---------------------------------------------------------------- cluster

echo "== cluster: 3 nodes in $tmp ($kvnode) =="
deadline=$((SECONDS + 30))
start_node 1
# The others join through node 1's API, which can only add them once it leads.
until st=$(status "${api_addr[1]}") && [[ $(json_field "$st" isLeader) == true ]]; do
  alive 1 || die "n1 exited during startup"
  ((SECONDS < deadline)) || die "n1 did not become leader within 30 s"
  sleep 0.1
done
start_node 2
start_node 3
for n in 1 2 3; do
  until st=$(status "${api_addr[n]}") && (($(voters "$st") == 3)) && [[ -n $(json_field "$st" leaderApiAddress) ]]; do
    alive "$n" || die "n$n exited during startup"
    ((SECONDS < deadline)) || die "the cluster did not come up within 30 s (n$n does not list 3 voters and a leader)"
    sleep 0.1
  done
done
find_leader
echo "up: leader n$leader (api ${api_addr[leader]}), follower used for the follower loads: n$follower"

# Reads of absent keys answer 404, which wrk counts as errors: write every
# key the read loads use first. curl --parallel, because wrk cannot stop
# after N requests (it always runs for its full -d).
echo "== preloading $keys keys (64 parallel requests to the leader) =="
for ((i = 0; i < keys; i++)); do
  ((i)) && echo next
  printf 'url = "http://%s/set"\ndata = "{\\"key\\":\\"r%d\\",\\"value\\":\\"0123456789abcdef\\"}"\nheader = "Content-Type: application/json"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "${api_addr[leader]}" "$i"
done >"$tmp/preload.curl"
preload_start=${EPOCHREALTIME/./}
curl --parallel --parallel-max 64 --no-progress-meter -K "$tmp/preload.curl" >"$tmp/preload.codes" 2>"$tmp/preload.err" &
child_pid=$!
wait "$child_pid" || die "preload: curl failed: $(tail -n 3 "$tmp/preload.err")"
child_pid=
preload_ok=$(grep -cx 200 "$tmp/preload.codes" || true)
((preload_ok == keys)) || die "preload: $preload_ok of $keys writes answered 200 (codes: $(sort "$tmp/preload.codes" | uniq -c | tr '\n' ' '))"
echo "preloaded in $(((${EPOCHREALTIME/./} - preload_start) / 1000)) ms"
wait_applied

# ---------------------------------------------------------------- loads

warmup=$((duration / 5))
((warmup < 1)) && warmup=1
((warmup > 3)) && warmup=3

names=() descs=() rps=() p50=() p99=() errs=() targets=() notes=()

# Prints "req/s p50_ms p99_ms non2xx socket_errors" from wrk --latency output.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/) return v * 1000
      if (v ~ /m$/) return v * 60000
      return v * 3600000
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { sock = $4 + $6 + $8 + $10 }
    END {
      if (rps == "") exit 1
      printf "%s %.3f %.3f %d %d\n", rps, p50, p99, non2xx, sock
    }' "$1"
}

run_wrk() {  # output-file connections seconds url script [script args...]
  local file=$1 conns=$2 secs=$3 url=$4 script=$5
  shift 5
  wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$wrk_dir/$script" "$url" -- "$@" >"$file" 2>&1 &
  child_pid=$!
  local rc=0
  wait "$child_pid" || rc=$?
  child_pid=
  return "$rc"
}

# load NAME DESCRIPTION ROLE(leader|follower) CONNECTIONS PATH SCRIPT [ARGS...]
# Key prefixes come from NAME, so each load (and its warm-up) writes new keys.
load() {
  local name=$1 desc=$2 role=$3 conns=$4 path=$5 script=$6
  shift 6
  local before=$leader
  find_leader
  local note=
  ((leader == before)) || note="leader moved to n$leader before this load"
  local n=$leader
  [[ $role == follower ]] && n=$follower
  local url="http://${api_addr[n]}$path" file=$tmp/wrk-$name.txt
  local a=("$@")
  [[ $script == set.lua ]] && a=("$name-warm")
  run_wrk "$tmp/wrk-$name-warmup.txt" "$conns" "$warmup" "$url" "$script" "${a[@]}" ||
    die "$name: wrk failed (warm-up): $(tail -n 5 "$tmp/wrk-$name-warmup.txt")"
  [[ $script == set.lua ]] && a=("$name")
  run_wrk "$file" "$conns" "$duration" "$url" "$script" "${a[@]}" ||
    die "$name: wrk failed: $(tail -n 5 "$file")"
  local r
  r=$(parse_wrk "$file") || die "$name: cannot read wrk's output: $(cat "$file")"
  local v
  read -r -a v <<<"$r"
  names+=("$name") descs+=("$desc") targets+=("n$n ($role)")
  rps+=("${v[0]}") p50+=("${v[1]}") p99+=("${v[2]}") errs+=($((v[3] + v[4])))
  if ((v[3] + v[4] > 0)); then
    cp "$file" "$tmp/failed-$name.txt"
    note="${note:+$note; }${v[3]} non-2xx, ${v[4]} socket errors"
  fi
  st=$(status "${api_addr[leader]}") || true
  [[ $(json_field "$st" isLeader) == true ]] || note="${note:+$note; }n$leader lost leadership during the load"
  notes+=("$note")
  printf '  %-24s %10.0f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d%s\n' "$name" "${v[0]}" "${v[1]}" "${v[2]}" \
    $((v[3] + v[4])) "${note:+  ($note)}"
}

echo "== loads: ${duration} s each after a ${warmup} s warm-up (wrk -t1); load average $(cut -d' ' -f1-3 /proc/loadavg) =="
load baseline "GET /status, leader, 64 conn (HTTP ceiling)" leader 64 /status status.lua
load set_c1 "set, leader, 1 conn" leader 1 /set set.lua
load set_c64 "set, leader, 64 conn" leader 64 /set set.lua
load set_fwd_c64 "set, follower (forwarded), 64 conn" follower 64 /set set.lua
wait_applied
load get_lin_leader_c64 "get linearizable, leader, 64 conn" leader 64 /get get.lua "$keys"
load get_lin_follower_c64 "get linearizable, follower, 64 conn" follower 64 /get get.lua "$keys"
load get_stale_follower_c64 "get stale, follower, 64 conn" follower 64 /get get.lua "$keys" stale
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- memory, restart

find_leader
rss_leader=$(rss_kib "${pids[leader]}")
rss_follower=$(rss_kib "${pids[follower]}")

echo "== restart: kill -9 n$follower, start it again with the same command =="
# Nothing writes now, so the leader's commit index is the target for the
# whole measurement.
target=$(json_field "$(status "${api_addr[leader]}")" commitIndex)
kill -KILL "${pids[follower]}"
# Braces: only then does 2>/dev/null also silence bash's own "Killed" notice.
{ wait "${pids[follower]}"; } 2>/dev/null || true
data_size=$(du -sh "$tmp/n$follower" | cut -f1)
restart_start=${EPOCHREALTIME/./}
start_node "$follower"
deadline=$((SECONDS + 60))
# A 10 ms poll; each curl adds its own few ms, so the result is an upper bound.
first_answer_ms=
until applied=$(applied_index "${api_addr[follower]}") && ((applied >= target)); do
  # kvnode serves HTTP only once it has opened its data dir, so the first
  # answer splits local recovery from catching up with the leader.
  ((applied < 0)) || [[ -n $first_answer_ms ]] ||
    first_answer_ms=$(((${EPOCHREALTIME/./} - restart_start) / 1000))
  alive "$follower" || die "n$follower exited after its restart"
  ((SECONDS < deadline)) || die "n$follower did not catch up to index $target within 60 s of its restart"
  sleep 0.01
done
restart_ms=$(((${EPOCHREALTIME/./} - restart_start) / 1000))
first_answer_ms=${first_answer_ms:-$restart_ms}
rss_restarted=$(rss_kib "${pids[follower]}")

# ---------------------------------------------------------------- report

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "0" }'; }
idx() {  # name → index in the result arrays
  local i
  for i in "${!names[@]}"; do [[ ${names[i]} == "$1" ]] && { echo "$i"; return; }; done
}
base=${rps[$(idx baseline)]}
gain=$(ratio "${rps[$(idx set_c64)]}" "${rps[$(idx set_c1)]}")
lin_stale=$(ratio "${rps[$(idx get_lin_follower_c64)]}" "${rps[$(idx get_stale_follower_c64)]}")
lin_stale_leader=$(ratio "${rps[$(idx get_lin_leader_c64)]}" "${rps[$(idx get_stale_follower_c64)]}")

echo
echo "== results: $(nproc) cores, load average $load_end at the end; compare ratios, not absolute numbers across runs =="
printf '%-23s %-44s %10s %8s %9s %9s %7s\n' load what req/s "x base" "p50 ms" "p99 ms" errors
for i in "${!names[@]}"; do
  printf '%-23s %-44s %10.0f %8s %9.2f %9.2f %7d\n' "${names[i]}" "${descs[i]}" "${rps[i]}" \
    "$(ratio "${rps[i]}" "$base")" "${p50[i]}" "${p99[i]}" "${errs[i]}"
done
echo
echo "group commit gain (set 64 conn / set 1 conn, leader):     ${gain}x"
echo "linearizable / stale reads (follower, 64 conn):           $lin_stale"
echo "linearizable reads on the leader / stale on a follower:   $lin_stale_leader"
echo "resident memory after the loads: leader n$leader $((rss_leader / 1024)) MiB, follower n$follower $((rss_follower / 1024)) MiB"
echo "restart of follower n$follower after kill -9 (data dir $data_size): caught up in $restart_ms ms (applied index >= leader's commit index $target)"
echo "  first /status answer after $first_answer_ms ms; $((rss_restarted / 1024)) MiB resident once caught up"

if [[ -n $out ]]; then
  {
    printf '{\n  "duration_s": %d,\n  "warmup_s": %d,\n  "keys": %d,\n  "cores": %d,\n  "kvnode": "%s",\n  "loads": [\n' \
      "$duration" "$warmup" "$keys" "$(nproc)" "$kvnode"
    for i in "${!names[@]}"; do
      printf '    {"name": "%s", "what": "%s", "target": "%s", "rps": %.1f, "ratio_to_baseline": %s, "p50_ms": %.3f, "p99_ms": %.3f, "errors": %d, "note": "%s"}%s\n' \
        "${names[i]}" "${descs[i]}" "${targets[i]}" "${rps[i]}" "$(ratio "${rps[i]}" "$base")" "${p50[i]}" "${p99[i]}" \
        "${errs[i]}" "${notes[i]}" "$( ((i + 1 < ${#names[@]})) && echo ,)"
    done
    printf '  ],\n  "group_commit_gain": %s,\n  "linearizable_over_stale_follower": %s,\n  "linearizable_leader_over_stale_follower": %s,\n' \
      "$gain" "$lin_stale" "$lin_stale_leader"
    printf '  "rss_kib": {"leader": %d, "follower": %d, "follower_after_restart": %d},\n' \
      "$rss_leader" "$rss_follower" "$rss_restarted"
    printf '  "restart_ms": %d,\n  "restart_first_answer_ms": %d,\n  "restart_target_index": %d,\n  "loadavg_end": "%s"\n}\n' \
      "$restart_ms" "$first_answer_ms" "$target" "$load_end"
  } >"$out"
  echo "JSON written to $out"
fi

failed=()
for i in "${!names[@]}"; do ((errs[i] == 0)) || failed+=("${names[i]}"); done
if ((${#failed[@]})); then
  for name in "${failed[@]}"; do
    echo "----- wrk output of $name -----" >&2
    cat "$tmp/failed-$name.txt" >&2
  done
  echo "cluster_bench.sh: requests failed in: ${failed[*]} (there should be none)" >&2
  exit 1
fi
