#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real
# systemd-nspawn hosts (hostkit/). Run as root on Debian: installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
npm run bundle >&2   # the integration tests run dist/index.js as the runner does
NODE_OPTIONS=--experimental-vm-modules npx jest "$@"
