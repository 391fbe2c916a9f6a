#!/usr/bin/env bash
# Runs the benchmarks (bench/bench.ts, then bench/bench-blue-green.ts) against local test hosts;
# root, Debian. Writes bench/results.md, bench/results.json and bench/results-blue-green.md.
#   scripts/bench.sh [bench|bench-blue-green ...]   (default: both, in that order)
# ZDD_ACTION_SCRIPT: run that bundle instead of dist/index.js, which is then not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(bench bench-blue-green)
scripts/ensure-deps.sh
[ -n "${ZDD_ACTION_SCRIPT:-}" ] || npm run bundle >&2
hostkit/build-rootfs.sh >/dev/null
# Bundled two levels below the repository, where the test-host helpers expect to live.
out=bench/.build
mkdir -p "$out"
for bench in "${benches[@]}"; do
  case "$bench" in bench | bench-blue-green) ;; *) echo "bench.sh: unknown benchmark $bench" >&2; exit 2 ;; esac
  npx esbuild "bench/$bench.ts" --bundle --platform=node --format=esm --outfile="$out/$bench.mjs" \
    --loader:.py=text --external:cpu-features --external:'*.node' --log-level=warning \
    --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
done
for bench in "${benches[@]}"; do
  node "$out/$bench.mjs"
done
