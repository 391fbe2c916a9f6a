# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style first-deploy: provisioned, never deployed. No `current` and no releases; the unit
# is enabled (`systemctl enable --now` before any deploy), so at boot it started and
# failed because /srv/myapp/current does not exist: it is `failed`, nothing serves
# (READY=none: host-up.sh waits until the unit has settled).
rm -rf "$R/srv/myapp/current" "$R/srv/myapp/releases/v0"
unit myapp <<'UNIT'
[Unit]
Description=Gunicorn for myapp
After=network.target

[Service]
User=www-data
Group=www-data
WorkingDirectory=/srv/myapp
EnvironmentFile=/etc/myapp.env
RuntimeDirectory=myapp
ExecStart=/srv/myapp/.venv/bin/gunicorn --workers 3 --chdir /srv/myapp/current --bind unix:/run/myapp/myapp.sock wsgi:app
ExecReload=/bin/kill -s HUP $MAINPID

[Install]
WantedBy=multi-user.target
UNIT
READY=none
