# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style config-file: `gunicorn -c /etc/myapp/gunicorn.conf.py wsgi:app`; bind, workers and
# chdir are only in that file (and the socket is not the kit's name).
put /etc/myapp/gunicorn.conf.py 644 root:root <<'PY'
# Gunicorn configuration for myapp (gunicorn -c /etc/myapp/gunicorn.conf.py)
import multiprocessing  # noqa: F401  (the usual workers = cpu_count() * 2 + 1, fixed here)

bind = "unix:/run/myapp/gunicorn.sock"
workers = 3
chdir = "/srv/myapp/current"
timeout = 30
accesslog = "-"
PY
guide_unit "/srv/myapp/.venv/bin/gunicorn -c /etc/myapp/gunicorn.conf.py wsgi:app"

nginx_site myapp <<'NGINX'
server {
    listen 80 default_server;
    server_name _;

    location / {
        include proxy_params;
        proxy_pass http://unix:/run/myapp/gunicorn.sock;
    }
}
NGINX
HEALTH_URL=http://unix:/run/myapp/gunicorn.sock:/health
