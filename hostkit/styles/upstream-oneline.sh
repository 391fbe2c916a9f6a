# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style upstream-oneline: Gunicorn's own deployment docs. A named upstream written on
# ONE line, `proxy_pass http://myapp;` from a named location behind try_files, the site
# in /etc/nginx/conf.d/myapp.conf (sites-enabled is empty), and the docs' unit:
# Type=notify, `kill -s HUP $MAINPID`, KillMode=mixed.
unit myapp <<'UNIT'
[Unit]
Description=gunicorn daemon for myapp
After=network.target

[Service]
Type=notify
NotifyAccess=main
User=www-data
Group=www-data
RuntimeDirectory=myapp
WorkingDirectory=/srv/myapp
EnvironmentFile=/etc/myapp.env
ExecStart=/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app
ExecReload=/bin/kill -s HUP $MAINPID
KillMode=mixed
TimeoutStopSec=5

[Install]
WantedBy=multi-user.target
UNIT

nginx_only
# The docs' locations (style-lib.sh) without their comments.
{
  cat <<'NGINX'
upstream myapp { server unix:/run/myapp/myapp.sock fail_timeout=0; }

server {
  listen 80 deferred;
  client_max_body_size 4G;
  server_name _;
  keepalive_timeout 5;

  # static files of the current release; everything else goes to Gunicorn
  root /srv/myapp/current/static;

NGINX
  gunicorn_docs_locations myapp '  ' bare
  echo '}'
} | put /etc/nginx/conf.d/myapp.conf 644 root:root
