#!/usr/bin/env bash
# Builds the Debian package consensuskv_<version>_<arch>.deb with CPack (packaging/packaging.cmake): a Release kvnode, its unit, man page and docs.
#
# Usage: scripts/package.sh [--tree DIR] [--out DIR] [--version V]
#   (default)   configure build-release/ (Release, -O3, prefix /usr), build kvnode, run cpack -G DEB
#   --tree DIR  package the kvnode already built in the configured tree DIR as it is
#               (no configure, no build; tests/integration/test_package.py does this)
#   --out DIR   where the .deb goes (default: <tree>/package)
#   --version V package version (default: 0.1.0+git<date>.<commit>, from git)
# Prints the path of the package. The same by hand, in any configured tree:
#   cmake --build build-release --target kvnode && (cd build-release && cpack -G DEB)
# docs/operations.md, "Installing the Debian package", says what it installs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
tree=""
out=""
version=""
while (($#)); do
  case "$1" in
    --tree) tree=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
if [[ -z $version ]]; then
  version="0.1.0+git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo local)"
fi

if [[ -z $tree ]]; then
  tree=$root/build-release
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
  cmake -S "$root" -B "$tree" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr >&2
  cmake --build "$tree" --target kvnode >&2
fi
tree=$(cd "$tree" && pwd)
[[ -f $tree/CPackConfig.cmake ]] || { echo "package.sh: $tree is not a configured build tree (no CPackConfig.cmake)" >&2; exit 2; }
[[ -x $tree/kvnode ]] || { echo "package.sh: $tree/kvnode is not built; build it first" >&2; exit 2; }
out=${out:-$tree/package}
mkdir -p "$out"
out=$(cd "$out" && pwd)

log=$(mktemp)
trap 'rm -rf "$log" "$out/_CPack_Packages"' EXIT
if ! (cd "$tree" && cpack -G DEB -R "$version" -B "$out") >"$log" 2>&1; then
  cat "$log" >&2
  echo "package.sh: cpack failed" >&2
  exit 1
fi
deb=$(sed -n 's/^CPack: - package: \(.*\) generated\.$/\1/p' "$log")
[[ -f $deb ]] || { cat "$log" >&2; echo "package.sh: cpack named no package" >&2; exit 1; }
echo "$deb"
