#!/usr/bin/env bash
# Demo: starts a local test host (real systemd, sshd, Gunicorn, Nginx in a
# systemd-nspawn container), deploys examples/app as release v1 and then v2
# with the action (dist/index.js, inputs as the Actions runner passes them),
# prints what serves after each deploy, and tears the host down.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/ensure-deps.sh
npm run bundle >/dev/null

hostkit/build-rootfs.sh >/dev/null
trap 'hostkit/host-down.sh zdd-demo >/dev/null 2>&1 || true' EXIT
echo "== starting a test host (fixed unit) ..."
hostkit/host-up.sh zdd-demo --unit fixed >/tmp/zdd-demo.env
# shellcheck disable=SC1091
. /tmp/zdd-demo.env
echo "   host $HOST_IP, host key $HOST_FINGERPRINT"

deploy() {
  local release=$1 out
  out=$(mktemp)
  echo
  echo "== deploying examples/app as release $release ..."
  env "INPUT_HOST=$HOST_USER@$HOST_IP" \
      "INPUT_PRIVATE-KEY=$(cat "$HOST_KEY")" \
      "INPUT_KNOWN-HOSTS=$(cat "$HOST_KNOWN_HOSTS")" \
      INPUT_SERVICE=myapp INPUT_RELEASE-PATH=/srv/myapp \
      "INPUT_HEALTH-URL=http://unix:/run/myapp/myapp.sock:/health" \
      "INPUT_RELEASE-ID=$release" "INPUT_SOURCE=$ROOT/examples/app" "INPUT_PIP-ARGS=--no-index --no-deps" \
      GITHUB_OUTPUT="$out" GITHUB_WORKSPACE="$ROOT" \
      node dist/index.js | grep -v -e '^::debug' -e '^::add-mask::' | sed 's/^/   | /'
  echo "   outputs: $(grep -E '^(status|release|previous-release|failed-requests)<<' -A1 "$out" | grep -v -- '--' | paste -sd' ' | sed 's/<<ghadelimiter_[^ ]*//g')"
  echo "   serving through Nginx: $(curl -fsS "http://$HOST_IP/")"
  rm -f "$out"
}

deploy v1
deploy v2
echo
echo "== done; tearing the host down"
