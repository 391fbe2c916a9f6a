#!/usr/bin/env bash
# Runs a command as root inside a test host (not over SSH):
#   hostkit/host-exec.sh NAME CMD [ARGS...]
set -euo pipefail
# shellcheck source=hostkit/lib.sh
. "$(dirname "$0")/lib.sh"
NAME=${1:?usage: host-exec.sh NAME CMD...}
shift
[ $# -gt 0 ] || die "usage: host-exec.sh NAME CMD..."
# shellcheck disable=SC1090
. "$STATE_ROOT/$NAME/host.env"
exec nsenter -t "$HOST_INIT_PID" -a -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 "$@"
