#!/usr/bin/env bash
# Runs the benchmarks (bench/bench.ts) against local test hosts; root, Debian.
# Writes bench/results.md and bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
npm run bundle >&2
hostkit/build-rootfs.sh >/dev/null
# Bundled two levels below the repository, where the test-host helpers expect to live.
out=bench/.build
mkdir -p "$out"
npx esbuild bench/bench.ts --bundle --platform=node --format=esm --outfile="$out/bench.mjs" \
  --loader:.py=text --external:cpu-features --external:'*.node' --log-level=warning \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
node "$out/bench.mjs"
