#!/usr/bin/env bash
# Mutation harness: applies each known-Raft-bug patch in tests/sim/mutants/ to a copy of the tree and measures how fast the simulator catches it.
#
# Usage: scripts/mutants.sh [--starts N] [--seeds N] [--nodes "3 5"] [--start-seeds "S1 S2 ..."]
#                           [--cluster-only] [--keep] [--out FILE] [MUTANT ...]
#   --starts N        random start seeds per node count (default 5)
#   --seeds N         seed budget per start: a mutant that survives it is a miss (default 300)
#   --nodes LIST      cluster sizes (default "3 5")
#   --start-seeds L   use these start seeds instead of random ones (replays an earlier run)
#   --cluster-only    turn off the protocol-rule checks (raft_sim --no-persist-checks): how
#                     fast do the cluster-wide invariants alone catch each mutant?
#   --keep            keep the temporary copy (its path is printed)
#   --out FILE        also write the result table (markdown) to FILE
#   MUTANT            names (or name prefixes, e.g. 01) of patches to run; default all
#
# The working tree is never modified: the tree (tracked and untracked, not
# ignored files) is copied to a temporary directory; each patch is applied
# there with `patch -p1`, raft_sim is rebuilt (ccache, only the core and the
# simulator recompile), copied aside, and the patch is reversed. Every sweep
# runs in swarm mode (--swarm: each seed draws its own fault profile) from
# a random start seed, and stops at the first failing seed. A failure only
# counts for the mutant if the unmutated simulator passes the same seed;
# otherwise (a bug of the unmutated core) the sweep goes on past it and the
# seed is reported.
#
# Output per mutant and cluster size: seeds to the first failure from each
# start (the first seed counts 1), their median and worst, and which
# invariant caught it. Exits 0 when every mutant applied and was caught within
# the budget from every start, 1 otherwise, 2 on bad usage.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

starts=5
budget=300
node_counts="3 5"
start_seeds=""
keep=0
out=""
checks=()
selected=()
while (($#)); do
  case "$1" in
    --starts) starts=$2; shift 2 ;;
    --seeds) budget=$2; shift 2 ;;
    --nodes) node_counts=$2; shift 2 ;;
    --start-seeds) start_seeds=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --cluster-only) checks=(--no-persist-checks); shift ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "mutants.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) selected+=("$1"); shift ;;
  esac
done

patches=()
for p in "$root"/tests/sim/mutants/*.patch; do
  name=$(basename "$p" .patch)
  if ((${#selected[@]})); then
    match=0
    for s in "${selected[@]}"; do [[ $name == "$s"* ]] && match=1; done
    ((match)) || continue
  fi
  patches+=("$p")
done
if ((${#patches[@]} == 0)); then
  echo "mutants.sh: no patch matches ${selected[*]:-anything} in tests/sim/mutants/" >&2
  exit 2
fi

# Start seeds: random unless given, one list per run so 3 and 5 nodes use the same ones.
if [[ -z $start_seeds ]]; then
  for ((k = 0; k < starts; k++)); do
    start_seeds+="$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000000 + 1 )) "
  done
fi
read -r -a start_list <<<"$start_seeds"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckv-mutants.XXXXXX")
# shellcheck disable=SC2317  # cleanup is called by the EXIT trap
cleanup() { if ((keep)); then echo "mutants.sh: kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
tree=$tmp/tree
mkdir -p "$tree" "$tmp/bin"
# The tree as it is now (including uncommitted edits), without build outputs.
git -C "$root" ls-files -z -co --exclude-standard | (cd "$root" && tar --null -T - -cf -) | tar -C "$tree" -xf -

export CCACHE_BASEDIR=$tree CCACHE_NOHASHDIR=true
echo "mutants.sh: copy in $tree; start seeds: ${start_list[*]}; budget $budget seeds; nodes $node_counts${checks[*]:+; ${checks[*]}}"
cmake -S "$tree" -B "$tree/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCKV_SANITIZE=OFF \
  -DCKV_BENCH=OFF >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; exit 1; }
build_sim() {  # -> 0 when raft_sim built; its log in $tmp/build.log
  cmake --build "$tree/build" --target raft_sim >"$tmp/build.log" 2>&1
}
build_sim || { echo "mutants.sh: the unmutated tree does not build:"; tail -30 "$tmp/build.log"; exit 1; }
cp "$tree/build/tests/sim/raft_sim" "$tmp/bin/baseline"

# Runs one sweep; prints "<seeds-to-failure> <failing seed> <invariant>" or "survived".
sweep() {  # binary, nodes, start
  local bin=$1 nodes=$2 start=$3 from=$3 left=$budget log seed inv rc
  log=$tmp/sweep.log
  while ((left > 0)); do
    rc=0
    "$bin" --seeds "$left" --start "$from" --nodes "$nodes" --swarm --max-failures 1 --tail 0 "${checks[@]}" \
      >"$log" 2>&1 || rc=$?
    seed=$(sed -n 's/^FAIL seed=\([0-9]*\) .*/\1/p' "$log" | head -1)
    inv=$(sed -n 's/^FAIL seed=[0-9]* .* simulated: \([^:]*\):.*/\1/p' "$log" | head -1)
    if [[ -z $seed ]]; then
      seed=$(sed -n 's/^raft_sim: the process died while running seed \([0-9]*\).*/\1/p' "$log" | head -1)
      # The core aborted (KV_CHECK): name the check that fired.
      inv="core abort: $(grep -m1 -o 'check failed: [^:]*' "$log" | sed 's/check failed: //')"
    fi
    if [[ -z $seed ]]; then
      if ((rc != 0)); then echo "error rc=$rc: $(tail -3 "$log" | tr '\n' ' ')"; return; fi
      echo "survived"
      return
    fi
    # Does the unmutated core fail this seed too? Then it is not the mutant's catch.
    if "$tmp/bin/baseline" --seed "$seed" --nodes "$nodes" --swarm --quiet --tail 0 "${checks[@]}" >/dev/null 2>&1; then
      echo "$((seed - start + 1)) $seed $inv"
      return
    fi
    echo "mutants.sh:   (seed $seed fails without the mutant too; skipped)" >&2
    left=$((left - (seed - from + 1)))
    from=$((seed + 1))
  done
  echo "survived"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print a[int((NR + 1) / 2)]}'; }

table="| mutant | caught by (starts) |"
rule="|---|---|"
for nodes in $node_counts; do table+=" $nodes nodes: median / worst |"; rule+="---|"; done
table+=$'\n'"$rule"
failed=0
for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  echo "== $name: $(sed -n '1s/^# //p' "$p")"
  if ! (cd "$tree" && patch -p1 --dry-run --silent <"$p" >"$tmp/patch.log" 2>&1); then
    echo "mutants.sh: $name: PATCH DOES NOT APPLY (src changed?): $(tr '\n' ' ' <"$tmp/patch.log")"
    table+=$'\n'"| $name | PATCH DOES NOT APPLY |"
    failed=1
    continue
  fi
  (cd "$tree" && patch -p1 --silent <"$p")
  if build_sim; then built=1; else built=0; fi
  (cd "$tree" && patch -p1 -R --silent <"$p")
  if ((!built)); then
    echo "mutants.sh: $name: DOES NOT BUILD:"; grep -m5 -E 'error' "$tmp/build.log" || tail -5 "$tmp/build.log"
    table+=$'\n'"| $name | DOES NOT BUILD |"
    failed=1
    continue
  fi
  cp "$tree/build/tests/sim/raft_sim" "$tmp/bin/$name"
  cells=()
  invariants=()
  for nodes in $node_counts; do
    counts=()
    worst=0
    survived=0
    for start in "${start_list[@]}"; do
      res=$(sweep "$tmp/bin/$name" "$nodes" "$start")
      if [[ $res == survived || $res == error* ]]; then
        echo "  $nodes nodes, start $start: ${res^^} ($budget seeds)"
        survived=1
        continue
      fi
      read -r n seed inv <<<"$res"
      echo "  $nodes nodes, start $start: caught after $n seed(s) (seed $seed): $inv"
      echo "     replay: patch -p1 < tests/sim/mutants/$name.patch in a copy, then raft_sim --seed $seed --nodes $nodes --swarm ${checks[*]}"
      counts+=("$n")
      invariants+=("$inv")
      ((n > worst)) && worst=$n
    done
    med=-
    if ((${#counts[@]})); then med=$(printf '%s\n' "${counts[@]}" | median); fi
    if ((survived)); then
      cells+=("$med / >$budget (survived $(( ${#start_list[@]} - ${#counts[@]} )) of ${#start_list[@]} starts)")
      failed=1
    else
      cells+=("$med / $worst")
    fi
  done
  caught_by=""
  ((${#invariants[@]})) && caught_by=$(printf '%s\n' "${invariants[@]}" | sort | uniq -c | sort -rn | awk '{c=$1; $1=""; sub(/^ /,""); printf "%s%s (%d)", (NR>1?", ":""), $0, c}')
  row="| $name | ${caught_by:-nothing} |"
  for c in "${cells[@]}"; do row+=" $c |"; done
  table+=$'\n'"$row"
done

echo
echo "start seeds: ${start_list[*]} (replay: scripts/mutants.sh --start-seeds \"${start_list[*]}\")"
echo "$table"
if [[ -n $out ]]; then printf '%s\n' "$table" >"$out"; fi
exit "$failed"
