# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style gunicorn-docs-systemd: the systemd layout of Gunicorn's deployment docs
# ("Deploying Gunicorn", section systemd): socket activation. gunicorn.socket listens on
# /run/gunicorn.sock (owned by www-data, mode 0660) and hands it to gunicorn.service as a
# file descriptor (LISTEN_FDS), so ExecStart has no --bind; Type=notify, NotifyAccess=main,
# `kill -s HUP $MAINPID`, KillMode=mixed, PrivateTmp=true, the user `someuser`, Debian's
# /usr/bin/gunicorn. Only the socket is enabled, as the docs do: the first connection
# starts the service. Nginx's server sits in nginx.conf's http block, `listen 8000;
# server_name 127.0.0.1;` proxying to http://unix:/run/gunicorn.sock.
# Adapted to the release layout only: WorkingDirectory=/srv/myapp with --chdir
# /srv/myapp/current (the docs run the app from WorkingDirectory) and wsgi:app; plus
# --workers 3 (Gunicorn's default is one worker, which the action refuses to reload).
in_root useradd --create-home --shell /bin/bash someuser

rm -f "$R/etc/nginx/sites-available/myapp"
gunicorn_docs_unit "/usr/bin/gunicorn --workers 3 --chdir /srv/myapp/current wsgi:app" gunicorn.socket
put /etc/systemd/system/gunicorn.socket 644 root:root <<'UNIT'
[Unit]
Description=gunicorn socket

[Socket]
ListenStream=/run/gunicorn.sock
SocketUser=www-data
SocketGroup=www-data
SocketMode=0660

[Install]
WantedBy=sockets.target
UNIT
mkdir -p "$R/etc/systemd/system/sockets.target.wants"
ln -sfn /etc/systemd/system/gunicorn.socket "$R/etc/systemd/system/sockets.target.wants/gunicorn.socket"

# The docs' server, in nginx.conf's http block (user www-data is Debian's default).
nginx_only
sed -i 's|^http {$|&\n\tserver {\n\t\tlisten          8000;\n\t\tserver_name     127.0.0.1;\n\t\tlocation / {\n\t\t\tproxy_pass http://unix:/run/gunicorn.sock;\n\t\t}\n\t}\n|' "$R/etc/nginx/nginx.conf"
grep -q 'proxy_pass http://unix:/run/gunicorn.sock;' "$R/etc/nginx/nginx.conf"
grep -q '^user www-data;' "$R/etc/nginx/nginx.conf"

SERVICE=gunicorn
HEALTH_URL=http://unix:/run/gunicorn.sock:/health
NGINX_URL=http://127.0.0.1:8000/health
READY=http://127.0.0.1:8000/health
