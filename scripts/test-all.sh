#!/usr/bin/env bash
# Everything from a fresh Debian machine with Node.js 20+: install and start the services the
# tests need, install dependencies exactly as locked, run the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
# Tools the tests drive directly (ISO builders, qemu-img, osinfo-db, osinfo-detect, curl, Chromium, ganesha).
bash scripts/ensure-packages.sh xorriso genisoimage qemu-utils osinfo-db curl chromium \
  nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common libnfs-utils util-linux libosinfo-bin
npm ci --no-audit --no-fund
exec bash scripts/test.sh "$@"
