#!/usr/bin/env bash
# Installs every Debian package consensuskv needs to build, test and run. Idempotent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang clang-tidy clang-format
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # liblmdb-dev: only to read and migrate data dirs from before the WAL (src/storage/open_log.h).
  liblmdb-dev libboost-dev libboost-system-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  # strace: bench/write_syscalls.sh counts the leader's syscalls per write.
  curl wrk python3 iptables strace
  # h2load (nghttp2-client): the HTTP/2 twin of wrk, drives gRPC calls in bench/etcd_api_bench.py --vs-seed.
  nghttp2-client
  # Our own gRPC server (src/grpcfront/): HTTP/2 from libnghttp2, gzip/deflate messages from zlib.
  libnghttp2-dev zlib1g-dev
  # TLS on the client listeners and between members (OpenSSL via Asio and grpc); openssl makes the tests' certificates.
  libssl-dev openssl
  # Client auth (src/auth/): argon2id password hashes, SHA-256 token digests, random tokens.
  libsodium-dev
  # kvnode's allocator (CMakeLists.txt: cheaper per request than glibc's malloc).
  libjemalloc-dev
  # etcd's v3 API: gRPC and protobuf, and etcd's .proto files used in place
  # (cmake/EtcdProtos.cmake): etcd's own, gogoproto, google/api annotations.
  protobuf-compiler protobuf-compiler-grpc libgrpc++-dev libprotobuf-dev
  golang-etcd-server-dev golang-github-gogo-protobuf-dev golang-github-grpc-ecosystem-grpc-gateway-dev
  # The reference for the etcd tests: etcdctl 3.4 and etcd itself (differential tests).
  etcd-client etcd-server
  # Client libraries nobody here wrote, run against kvnode and etcd (tests/integration/test_client_libraries.py).
  python3-etcd3 python3-etcd3gw
  # promtool (package prometheus) validates /metrics; headless chromium loads the /ui page (tests/integration/test_observability.py).
  prometheus chromium chromium-driver
)

# shellcheck source=scripts/apt_packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_packages.sh"
install_missing_packages setup "${packages[@]}"

# The npm etcd3 client for tests/integration/test_node_etcd3.py, pinned by
# tests/clients/node/package-lock.json; Debian's Node.js when none is installed.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  install_missing_packages setup nodejs npm
fi
node_client="$(dirname "${BASH_SOURCE[0]}")/../tests/clients/node"
if [[ ! "$node_client/node_modules/.package-lock.json" -nt "$node_client/package-lock.json" ]]; then
  echo "setup: installing the npm etcd3 client (npm ci in tests/clients/node)"
  npm ci --prefix "$node_client" --no-audit --no-fund --ignore-scripts --loglevel=error
fi
