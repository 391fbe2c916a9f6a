# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tutorial-root: the unit runs as root and Gunicorn drops its workers to a user itself:
# shop.service has no User=, and runs `/opt/venvs/shop/bin/python -m gunicorn --user shop
# --group www-data --workers 2 --bind unix:/run/shop.sock wsgi:app` from /var/www/shop (code
# owned by root, the venv outside it). Nginx reaches it through a named upstream, as
# Gunicorn's deployment docs show. No health route. host.env describes the server as
# `adopt.sh --service shop --release-path /srv/shop` leaves it.
# shellcheck source=hostkit/tutorial-lib.sh
. "$KIT/tutorial-lib.sh"
tutorial_base
in_root useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin shop
tutorial_app /var/www/shop root:root
tutorial_venv /opt/venvs/shop root:root
tutorial_unit shop "" "" /var/www/shop \
  "/opt/venvs/shop/bin/python -m gunicorn --user shop --group www-data --workers 2 --bind unix:/run/shop.sock wsgi:app"

nginx_site shop <<'NGINX'
upstream shop_app {
    server unix:/run/shop.sock fail_timeout=0;
}

server {
    listen 80 default_server;
    server_name _;

    location / {
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_redirect off;
        proxy_pass http://shop_app;
    }
}
NGINX

SERVICE=shop
RELEASE_PATH=/srv/shop
HEALTH_URL=http://unix:/run/shop/shop.sock:/health
READY=http://$IP/
