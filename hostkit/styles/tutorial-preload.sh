# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tutorial-preload: tutorial-socket, but Gunicorn runs with --preload, which adopt.sh
# must refuse (a reload would keep serving the code the master loaded), changing nothing.
# shellcheck source=hostkit/styles/tutorial-socket.sh
. "$KIT/styles/tutorial-socket.sh"
tutorial_unit myproject app www-data /home/app/myproject \
  "/home/app/myproject/venv/bin/gunicorn --workers 3 --preload --bind unix:myproject.sock -m 007 wsgi:app" \
  "PATH=/home/app/myproject/venv/bin"
