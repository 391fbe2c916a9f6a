# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style python-m: the venv's interpreter runs Gunicorn as a module (no console script
# is involved): `python -m gunicorn` with its options as flags.
guide_unit "/srv/myapp/.venv/bin/python -m gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
