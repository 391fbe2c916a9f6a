#!/usr/bin/env bash
# Converts a server that already runs a Flask app under Gunicorn, systemd and Nginx (as the
# common tutorials set it up) to the layout flask-zero-downtime-deploy deploys, without
# dropping a request. As root, in a copy of examples/server/:
#   ./adopt.sh --service UNIT --release-path PATH --deploy-user USER [--authorized-key FILE]
#              [--apply | --undo] [--health-path PATH] [--shared NAME]... [--check-with DIR]
# Without --apply or --undo it only prints the plan: every file it would write or change, as
# a diff, and every directory it would create or copy. `./adopt.sh --help` lists the options;
# docs/adopt.md explains what it does and why.
# The work is done by adopt.py beside this script, with the system's Python (3.9 or newer).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
case " $* " in *" --help "* | *" -h "*) exec /usr/bin/env python3 "$HERE/adopt.py" --help ;; esac
if [ "$(id -u)" != 0 ]; then
  echo "adopt: run as root (sudo $0 $*): it reads and changes systemd units, Nginx and sudoers" >&2
  exit 2
fi
PYTHON=
for candidate in /usr/bin/python3 /usr/local/bin/python3; do
  if [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
    PYTHON=$candidate
    break
  fi
done
if [ -z "$PYTHON" ]; then
  echo "adopt: needs the system's python3, version 3.9 or newer (apt-get install python3)" >&2
  exit 2
fi
exec "$PYTHON" "$HERE/adopt.py" "$@"
