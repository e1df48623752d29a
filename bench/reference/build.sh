#!/usr/bin/env bash
# Builds the reference's twin (bench/reference/main.go) for bench/write_bench.py, installing Go and its Debian libraries first.
#
# Usage: bench/reference/build.sh [OUTPUT]   (default build/bench/reference-kvnode)
# Offline: Debian's golang-go and the Go sources of hashicorp/raft and
# raft-boltdb (with their dependencies) from Debian's packages, built in
# GOPATH mode against /usr/share/gocode; no module download.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-build/bench/reference-kvnode}
packages=(golang-go golang-github-hashicorp-raft-dev golang-github-hashicorp-raft-boltdb-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "reference/build.sh: installing ${missing[*]}"
  sudo=(); ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
mkdir -p "$(dirname "$out")"
out=$(realpath "$out")
cd bench/reference
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=${GOCACHE:-/tmp/ckv-go-cache} go build -o "$out" .
echo "reference/build.sh: built $out"
