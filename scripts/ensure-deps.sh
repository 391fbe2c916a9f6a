#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine (run as root):
# Node.js + npm when missing, the packages the test-host kit needs, and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
for cmd in mmdebstrap:mmdebstrap zstd:zstd systemd-nspawn:systemd-container ip:iproute2 ssh:openssh-client curl:curl tar:tar; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need_apt+=("${cmd#*:}")
done
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need_apt+=(debian-archive-keyring)
# The unit tests run the remote helper's Python tests with the system Python; lint runs pyflakes.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
/usr/bin/python3 -c 'import pyflakes' >/dev/null 2>&1 || need_apt+=(python3-pyflakes)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing apt packages: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

# npm dependencies exactly as locked (reinstalled only when the lock changed).
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.zdd-lock; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json node_modules/.zdd-lock
fi
