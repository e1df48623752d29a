#!/usr/bin/env bash
# Builds consensuskv_<version>_<arch>.deb with dpkg-deb: kvnode, a systemd unit, its flags file, a system user, /var/lib/consensuskv.
#
# Usage: scripts/package.sh [--kvnode PATH] [--out DIR] [--version V]
#   --kvnode   the binary to package (default: build/kvnode; build it first, a
#              Release build for production: cmake -DCMAKE_BUILD_TYPE=Release)
#   --out      where the .deb goes (default: build/package)
#   --version  package version (default: 0.1.0+git<date>.<commit> from git)
# Prints the path of the package. Files: packaging/ (unit, flags file,
# maintainer scripts); docs/operations.md, "Installing the Debian package".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
kvnode=build/kvnode
out=build/package
version=""
while (($#)); do
  case "$1" in
    --kvnode) kvnode=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    *) echo "package.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ -x $kvnode ]] || { echo "package.sh: $kvnode is not an executable; build kvnode first" >&2; exit 2; }
if [[ -z $version ]]; then
  version="0.1.0+git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo local)"
fi
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg
install -D -m 0755 "$kvnode" "$pkg/usr/bin/kvnode"
strip --strip-unneeded "$pkg/usr/bin/kvnode"
install -D -m 0644 packaging/consensuskv.service "$pkg/lib/systemd/system/consensuskv.service"
install -D -m 0644 packaging/default.conf "$pkg/etc/default/consensuskv"
install -d -m 0755 "$pkg/etc/consensuskv"
for doc in README.md docs/operations.md docs/metrics.md docs/api.md; do
  install -D -m 0644 "$doc" "$pkg/usr/share/doc/consensuskv/$(basename "$doc")"
done
install -d "$pkg/DEBIAN"
for script in postinst prerm postrm; do install -m 0755 "packaging/$script" "$pkg/DEBIAN/$script"; done
echo /etc/default/consensuskv >"$pkg/DEBIAN/conffiles"

# The shared libraries kvnode links, as Debian package dependencies.
mkdir -p "$stage/debian"
echo "Source: consensuskv" >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O "$pkg/usr/bin/kvnode" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "package.sh: dpkg-shlibdeps found no dependencies for $kvnode" >&2; exit 1; }
installed_kb=$(du -ks "$pkg" --exclude=DEBIAN | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: consensuskv
Version: $version
Architecture: $arch
Maintainer: consensuskv developers <consensuskv@localhost>
Installed-Size: $installed_kb
Depends: adduser, $depends
Section: database
Priority: optional
Description: Raft-replicated key-value store with etcd's v3 API
 kvnode is one member of a strongly consistent key-value cluster: a drop-in
 replacement for etcd v3 (gRPC API and JSON gateway, etcdctl works) and for
 a small HTTP key-value service. Runs as consensuskv.service with its flags
 in /etc/default/consensuskv and its data in /var/lib/consensuskv.
CONTROL

mkdir -p "$out"
deb="$out/consensuskv_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
