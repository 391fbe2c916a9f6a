# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style tcp-localhost: Gunicorn on TCP, `--bind 127.0.0.1:8000`, and Nginx proxying
# to `http://localhost:8000` (a name, which also resolves to ::1 where nothing listens).
guide_unit "/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind 127.0.0.1:8000 wsgi:app"

nginx_site myapp <<'NGINX'
server {
    listen 80 default_server;
    server_name _;

    location / {
        proxy_pass http://localhost:8000;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
}
NGINX
HEALTH_URL=http://127.0.0.1:8000/health
