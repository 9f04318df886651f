#!/usr/bin/env bash
# Everything from a fresh Debian machine with Node.js 20+: install and start the services the
# tests need, install dependencies exactly as locked, run the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
# The packages the tests use directly, from the one list (scripts/test-packages.txt).
mapfile -t test_packages < <(sed -e 's/#.*//' scripts/test-packages.txt | awk 'NF { print $1 }')
bash scripts/ensure-packages.sh "${test_packages[@]}"
# A German locale, for the tests that prove parsed command output and database error handling
# do not depend on the caller's or the server's language. Made before services.sh starts
# PostgreSQL, so the server can use it too.
if ! locale -a 2>/dev/null | grep -qx 'de_DE.utf8'; then
  if [ "$(id -u)" -eq 0 ]; then localedef -i de_DE -f UTF-8 de_DE.UTF-8; else sudo localedef -i de_DE -f UTF-8 de_DE.UTF-8; fi
fi
bash scripts/services.sh
npm ci --no-audit --no-fund
exec bash scripts/test.sh "$@"
