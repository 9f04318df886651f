#!/usr/bin/env bash
# Everything from a fresh Debian machine with Node.js 20+: install and start the services the
# tests need, install dependencies exactly as locked, run the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
# A German locale, for the tests that prove parsed command output and database error handling
# do not depend on the caller's or the server's language. Made before services.sh starts
# PostgreSQL, so the server can use it too.
if ! locale -a 2>/dev/null | grep -qx 'de_DE.utf8'; then
  bash scripts/ensure-packages.sh locales
  localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi
bash scripts/services.sh
# Tools the tests drive directly (ISO builders, qemu-img, osinfo-db, osinfo-detect, curl, Chromium, ganesha).
bash scripts/ensure-packages.sh xorriso genisoimage qemu-utils osinfo-db curl chromium \
  nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common libnfs-utils util-linux libosinfo-bin
npm ci --no-audit --no-fund
exec bash scripts/test.sh "$@"
