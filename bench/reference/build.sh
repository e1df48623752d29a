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
# shellcheck source=scripts/apt_packages.sh
source scripts/apt_packages.sh
install_missing_packages reference/build.sh golang-go golang-github-hashicorp-raft-dev \
  golang-github-hashicorp-raft-boltdb-dev
mkdir -p "$(dirname "$out")"
out=$(realpath "$out")
cd bench/reference
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=${GOCACHE:-/tmp/ckv-go-cache} go build -o "$out" .
echo "reference/build.sh: built $out"
