#!/usr/bin/env bash
# Runs the benchmark (bench/bench.ts) against local test hosts; root, Debian.
# Writes bench/results.md and bench/results.json.
#   scripts/bench.sh [PART ...]   (parts: reload blue-green restore wall fleet; default: all,
#                                  then the results go to bench/.build/ instead)
# ZDD_ACTION_SCRIPT: run that bundle instead of dist/index.js, which is then not rebuilt.
# ZDD_BENCH_REQUESTS: requests per run under load (default 10000; fewer while developing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
[ -n "${ZDD_ACTION_SCRIPT:-}" ] || npm run bundle >&2
hostkit/build-rootfs.sh >/dev/null
# Bundled two levels below the repository, where the test-host helpers expect to live.
out=bench/.build
mkdir -p "$out"
npx esbuild bench/bench.ts --bundle --platform=node --format=esm --outfile="$out/bench.mjs" \
  --loader:.py=text --external:cpu-features --external:'*.node' --log-level=warning \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
node "$out/bench.mjs" "$@"
