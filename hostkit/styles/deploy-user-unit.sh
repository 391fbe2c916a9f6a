# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style deploy-user-unit: the unit runs as the deploy user itself (User=deploy,
# Group=www-data, socket umask 007 so Nginx can connect), and sudoers grants ONLY
# `systemctl reload|restart|start myapp` (no pwdx, no nginx -t, no journalctl).
unit myapp <<'UNIT'
[Unit]
Description=Gunicorn instance to serve myapp
After=network.target

[Service]
User=deploy
Group=www-data
WorkingDirectory=/srv/myapp
EnvironmentFile=/etc/myapp.env
RuntimeDirectory=myapp
ExecStart=/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock -m 007 wsgi:app
ExecReload=/bin/kill -s HUP $MAINPID
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
sudoers deploy-myapp <<'SUDO'
deploy ALL=(root) NOPASSWD: /usr/bin/systemctl reload myapp, /usr/bin/systemctl restart myapp, /usr/bin/systemctl start myapp
SUDO
