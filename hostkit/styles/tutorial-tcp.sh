# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tutorial-tcp: a tutorial that binds Gunicorn to TCP. The user `flask` owns
# /opt/flaskapp with the venv inside, the unit flaskapp.service runs `venv/bin/gunicorn -w 2
# -b 127.0.0.1:8000 wsgi:app` from there (no ExecReload), and Nginx proxies to
# http://127.0.0.1:8000 with its own proxy headers. The app has no health route. host.env
# describes the server as `adopt.sh --service flaskapp --release-path /srv/flaskapp` leaves it.
# shellcheck source=hostkit/tutorial-lib.sh
. "$KIT/tutorial-lib.sh"
tutorial_base
in_root useradd --system --user-group --home-dir /opt/flaskapp --no-create-home --shell /usr/sbin/nologin flask
tutorial_app /opt/flaskapp flask:flask
tutorial_venv /opt/flaskapp/venv flask:flask
tutorial_unit flaskapp flask flask /opt/flaskapp \
  "/opt/flaskapp/venv/bin/gunicorn -w 2 -b 127.0.0.1:8000 wsgi:app"

nginx_site flaskapp <<'NGINX'
server {
    listen 80 default_server;
    server_name _;

    location / {
        proxy_pass http://127.0.0.1:8000;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}
NGINX

SERVICE=flaskapp
RELEASE_PATH=/srv/flaskapp
HEALTH_URL=http://unix:/run/flaskapp/flaskapp.sock:/health
READY=http://$IP/
