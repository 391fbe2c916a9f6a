# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style web-concurrency: no --workers; the number of workers comes from WEB_CONCURRENCY
# in the EnvironmentFile (Gunicorn's default for `workers`), with more options in
# GUNICORN_CMD_ARGS there.
guide_unit "/srv/myapp/.venv/bin/gunicorn --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
cat >>"$R/etc/myapp.env" <<'ENV'
WEB_CONCURRENCY=3
GUNICORN_CMD_ARGS="--timeout 60 --graceful-timeout 20"
ENV
