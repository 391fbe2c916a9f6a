#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real
# systemd-nspawn hosts (hostkit/). Run as root on Debian: installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
npm run bundle >&2   # the integration tests run dist/index.js as the runner does
crashes=.test-results/gunicorn-crashes
rm -f "$crashes"
status=0
NODE_OPTIONS=--experimental-vm-modules npx jest "$@" || status=$?
# Runs in which Gunicorn before 24.1 killed its own master on the reload (a Gunicorn bug the
# action names and restarts from): tests of zero downtime did not count their failed requests.
if [ -s "$crashes" ]; then
  echo "Gunicorn's own logging crash happened in $(wc -l <"$crashes") action run(s):" >&2
  cat "$crashes" >&2
fi
exit "$status"
