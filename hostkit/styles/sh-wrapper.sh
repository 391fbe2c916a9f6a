# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style sh-wrapper: ExecStart runs a shell that execs Gunicorn (so MainPID is Gunicorn's master).
guide_unit "/bin/sh -c 'exec /srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app'"
