# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style celery-blue-green: the blue-green style (each release on its own venv, linked
# as .venv) plus the celery style's worker, which runs the release's own environment
# through current: /srv/myapp/current/.venv/bin/python -m celery.
# shellcheck source=hostkit/styles/blue-green.sh
. "$KIT/styles/blue-green.sh"
[ -L "$R/srv/myapp/releases/v0/.venv" ] || { echo "release v0 has no .venv link" >&2; exit 1; }
CELERY_PYTHON=/srv/myapp/current/.venv/bin/python
# shellcheck source=hostkit/styles/celery.sh
. "$KIT/styles/celery.sh"
