# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tutorial-socket: the most common Flask tutorial, as the issue that asked for adopt.sh
# found it. The user `app` owns /home/app/myproject, the venv is inside it (venv/), the unit
# myproject.service runs `venv/bin/gunicorn --workers 3 --bind unix:myproject.sock -m 007
# wsgi:app` as app:www-data from the app directory (a relative socket, no ExecReload, PATH
# set to the venv), and Nginx proxies to http://unix:/home/app/myproject/myproject.sock.
# The app answers "Hello There!" at / and has no health route. host.env describes the
# server as `adopt.sh --service myproject --release-path /srv/myproject` leaves it.
# shellcheck source=hostkit/tutorial-lib.sh
. "$KIT/tutorial-lib.sh"
tutorial_base
tutorial_user app
tutorial_app /home/app/myproject app:app
tutorial_venv /home/app/myproject/venv app:app
tutorial_unit myproject app www-data /home/app/myproject \
  "/home/app/myproject/venv/bin/gunicorn --workers 3 --bind unix:myproject.sock -m 007 wsgi:app" \
  "PATH=/home/app/myproject/venv/bin"

tutorial_site myproject 80 "myproject.example.test www.myproject.example.test" \
  /home/app/myproject/myproject.sock

SERVICE=myproject
RELEASE_PATH=/srv/myproject
HEALTH_URL=http://unix:/run/myproject/myproject.sock:/health
READY=http://$IP/
