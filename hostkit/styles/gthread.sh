# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style gthread: threaded workers, `--worker-class gthread --threads 4 --workers 2`.
guide_unit "/srv/myapp/.venv/bin/gunicorn --worker-class gthread --threads 4 --workers 2 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
