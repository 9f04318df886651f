#!/usr/bin/env bash
# Everything from a fresh Debian machine with Node.js 20+: install and start the services the
# tests need, install dependencies exactly as locked, run the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
npm ci --no-audit --no-fund
exec bash scripts/test.sh "$@"
