#!/usr/bin/env bash
# Runs every benchmark in bench/ in full (npm run bench), or one: bash scripts/bench.sh repository
# QUANTIX_BENCH_QUICK=1 gives the small run that CI does through bench/benchmarks.test.ts.
# A full run records its figures in bench/results.json and bench/results/<bench>.svg, and
# rewrites the table in bench/README.md from them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh postgres libvirt sshd
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for file in bench/*.ts; do
    case "$file" in *.test.ts) continue ;; esac
    names+=("$(basename "$file" .ts)")
  done
fi
for name in "${names[@]}"; do
  echo "=== bench/$name"
  # The gigabytes the last bench wrote reach the disk now, not during this one's measurements
  # (they had halved a 1 GiB export and upload that measure 1x alone).
  sync
  node --import tsx "bench/$name.ts"
done
if [ "${QUANTIX_BENCH_QUICK:-}" != 1 ]; then
  node --import tsx bench/lib/readme-table.ts
  # The project formats markdown too: keep the rewritten table as the lint wants it.
  npx biome check --write bench/README.md bench/results.json > /dev/null
fi
