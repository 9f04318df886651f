#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet; installs nothing
# (and makes no apt call at all) when every one is there. For tools the tests run that are not
# services (xorriso, genisoimage, osinfo-db, …): a fresh CI machine starts without them.
#   bash scripts/ensure-packages.sh xorriso genisoimage osinfo-db
# Concurrent callers (parallel test files) are serialised with flock, so apt's lock is never
# fought over; the second caller finds the packages installed and returns. apt waits for a dpkg
# lock held by any other installer (DPkg::Lock::Timeout) instead of failing at once.
set -euo pipefail

log() { printf '[ensure-packages] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

[ $# -gt 0 ] || { log 'usage: ensure-packages.sh DEBIAN_PACKAGE...'; exit 2; }
for name in "$@"; do
  case $name in
    *[!a-z0-9.+-]* | '' | -*) log "not a Debian package name: $name"; exit 2 ;;
  esac
done

missing_packages() {
  local name
  for name in "$@"; do
    dpkg-query -W -f='${db:Status-Status}' "$name" 2>/dev/null | grep -qx installed || printf '%s\n' "$name"
  done
}

mapfile -t missing < <(missing_packages "$@")
[ ${#missing[@]} -eq 0 ] && exit 0

lock=${QUANTIX_APT_LOCK:-/tmp/quantix-ensure-packages.lock}
exec 9>"$lock"
flock -w 600 9 || { log "timed out waiting for $lock"; exit 1; }
mapfile -t missing < <(missing_packages "$@")
[ ${#missing[@]} -eq 0 ] && exit 0

log "installing ${missing[*]}"
as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
mapfile -t still < <(missing_packages "$@")
[ ${#still[@]} -eq 0 ] || { log "still missing after apt-get install: ${still[*]}"; exit 1; }
log "installed ${missing[*]}"
