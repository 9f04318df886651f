#!/usr/bin/env bash
# The test command (npm test): build, typecheck, lint, then every test, including the
# integration tests against real services (start them first: scripts/services.sh) and each
# benchmark in quick mode. Ends with one line: "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1

step() {
  local name=$1
  shift
  echo "==> $name"
  if ! "$@"; then
    echo "$name failed"
    echo "0 passed, 1 failed"
    exit 1
  fi
}

step build npx turbo run build --output-logs=errors-only
step typecheck npx turbo run typecheck --output-logs=errors-only
step lint npx biome check --error-on-warnings .

mkdir -p test-results
rm -f test-results/vitest.json
echo '==> tests'
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@"
status=$?
node scripts/test-summary.mjs test-results/vitest.json || status=1
exit $status
