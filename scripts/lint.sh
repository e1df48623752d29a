#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) over src/ using build/compile_commands.json; exits 1 if it finds anything.
#
# Usage: scripts/lint.sh [PATH-REGEX]   (default: everything under src/)
# Needs a configured build/ tree (scripts/test.sh or scripts/run.sh makes one).
# Not part of scripts/test.sh yet: it is slower than the tests and not yet clean.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
filter=${1:-"$root/src/"}
jobs=2

if [[ ! -f build/compile_commands.json ]]; then
  echo "lint.sh: build/compile_commands.json missing; configure first:" >&2
  echo "  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo" >&2
  exit 2
fi
# Once proto/ exists, generated headers must be built before clang-tidy can parse
# their users: build the tree first (scripts/test.sh does).

log=build/clang-tidy.log
# -Wno-error: GCC-oriented -Werror in the compile commands must not turn clang's own
# warnings into parse failures; clang-tidy reports its checks separately.
# Boost 1.74's Asio detects C++20 coroutines on clang only through the old coroutines
# TS macro, so clang (unlike GCC) would not see asio::awaitable; tell it they exist.
run-clang-tidy -quiet -p build -j "$jobs" \
  -extra-arg=-Wno-error -extra-arg=-Wno-unknown-warning-option \
  -extra-arg=-DBOOST_ASIO_HAS_CO_AWAIT=1 -extra-arg=-DBOOST_ASIO_HAS_STD_COROUTINE=1 \
  "$filter" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$log" || true  # run-clang-tidy-14 forces colour

# Findings, de-duplicated (a header is checked once per file that includes it).
grep -E '^/.*:[0-9]+:[0-9]+: (warning|error):' "$log" | sort -u >build/clang-tidy.findings || true
count=$(wc -l <build/clang-tidy.findings)
if ((count > 0)); then
  sed "s|^$root/||" build/clang-tidy.findings
  echo
  echo "lint.sh: $count finding(s); by check:"
  grep -oE '\[[a-z0-9.,-]+\]$' build/clang-tidy.findings | sort | uniq -c | sort -rn
  echo "full output: $log"
  exit 1
fi
echo "lint.sh: clean"
