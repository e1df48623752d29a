# Sourced (not run): install_missing_packages TAG PACKAGE... installs the Debian packages not yet installed.
#
# Shared by scripts/setup.sh and the benchmark helpers that need packages
# the tests do not (bench/reference/build.sh). Refreshes the package lists
# first: on a fresh machine they may be empty. TAG prefixes the log line.
install_missing_packages() {
  local tag=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "$tag: all packages present"
    return 0
  fi
  echo "$tag: installing ${missing[*]}"
  local sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
