#!/usr/bin/env bash
# Runs the benchmarks (bench/bench.ts, then bench/bench-blue-green.ts) against local test hosts;
# root, Debian. Writes bench/results.md, bench/results.json and bench/results-blue-green.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
npm run bundle >&2
hostkit/build-rootfs.sh >/dev/null
# Bundled two levels below the repository, where the test-host helpers expect to live.
out=bench/.build
mkdir -p "$out"
for bench in bench bench-blue-green; do
  npx esbuild "bench/$bench.ts" --bundle --platform=node --format=esm --outfile="$out/$bench.mjs" \
    --loader:.py=text --external:cpu-features --external:'*.node' --log-level=warning \
    --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
done
node "$out/bench.mjs"
node "$out/bench-blue-green.mjs"
