# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style vhost: a name-based virtual host. The app's server answers only for
# app.example.test (not default_server); a separate default server answers 404 to
# every other name, so http://127.0.0.1/ is not the app. The name resolves to the host.
guide_unit "/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app"
nginx_only
put /etc/nginx/sites-available/default 644 root:root <<'NGINX'
# Anything not addressed to a site we host.
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;
    return 404;
}
NGINX
ln -sfn /etc/nginx/sites-available/default "$R/etc/nginx/sites-enabled/default"
put /etc/nginx/sites-available/app.example.test 644 root:root <<'NGINX'
server {
    listen 80;
    listen [::]:80;
    server_name app.example.test;

    location / {
        include proxy_params;
        proxy_pass http://unix:/run/myapp/myapp.sock;
    }
}
NGINX
ln -sfn /etc/nginx/sites-available/app.example.test "$R/etc/nginx/sites-enabled/app.example.test"
add_hosts_name app.example.test
NGINX_URL=http://app.example.test/health
READY=http://app.example.test/health
