# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style mismatch: Nginx proxies to unix:/run/myapp/other.sock, where nothing listens,
# while Gunicorn binds unix:/run/myapp/myapp.sock. Ready means Gunicorn answers on its socket.
guide_unit "/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
nginx_site myapp <<'NGINX'
server {
    listen 80 default_server;
    server_name _;

    location / {
        include proxy_params;
        proxy_pass http://unix:/run/myapp/other.sock;
    }
}
NGINX
READY=http://unix:/run/myapp/myapp.sock:/health
