# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style other-names: nothing is called myapp. The service `shop` runs as the user `shop`
# from /var/www/shop (releases/, shared/, current), binds /run/shop/gunicorn.sock, reads
# /etc/default/shop, and serves `app:application` from app.py.
in_root useradd --system --user-group --home-dir /var/www/shop --no-create-home --shell /usr/sbin/nologin shop
in_root gpasswd -d deploy www-data >/dev/null
in_root usermod -aG shop deploy

# The layout; the kit's venv moves here (faster than a new one): its scripts' #! lines
# name its path, and its bytecode caches the old file names (rebuilt on import).
install -d -m 755 "$R/var/www/shop" "$R/var/www/shop/releases/v0"
install -d -m 2775 "$R/var/www/shop/shared"
cp -a "$R/srv/myapp/.venv" "$R/var/www/shop/.venv"
find "$R/var/www/shop/.venv" -name __pycache__ -prune -exec rm -rf {} +
grep -rlI '/srv/myapp/.venv' "$R/var/www/shop/.venv/bin" "$R/var/www/shop/.venv/pyvenv.cfg" |
  xargs sed -i 's|/srv/myapp/.venv|/var/www/shop/.venv|g'
v0_module /var/www/shop/releases/v0/app.py application
echo '{"id": "v0"}' >"$R/var/www/shop/releases/v0/.zdd-release.json"
ln -sfn releases/v0 "$R/var/www/shop/current"
in_root chown -hR deploy:deploy /var/www/shop/releases /var/www/shop/current /var/www/shop/.venv
in_root chown deploy:deploy /var/www/shop
in_root chown deploy:shop /var/www/shop/shared
put /etc/default/shop 640 root:shop <<ENV
# shop service environment
SECRET_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
DATABASE_URL=sqlite:////var/www/shop/shared/shop.db
ENV

# Everything named myapp goes.
drop_unit myapp
rm -rf "$R/srv/myapp" "$R/etc/myapp.env" "$R/etc/nginx/sites-available/myapp"

unit shop <<'UNIT'
[Unit]
Description=shop (Gunicorn)
After=network.target

[Service]
User=shop
Group=shop
WorkingDirectory=/var/www/shop
EnvironmentFile=/etc/default/shop
RuntimeDirectory=shop
ExecStart=/var/www/shop/.venv/bin/gunicorn --workers 3 --chdir /var/www/shop/current --bind unix:/run/shop/gunicorn.sock app:application
ExecReload=/bin/kill -s HUP $MAINPID
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT

nginx_site shop <<'NGINX'
server {
    listen 80 default_server;
    server_name _;

    location /static/ {
        alias /var/www/shop/current/static/;
    }

    location / {
        include proxy_params;
        proxy_pass http://unix:/run/shop/gunicorn.sock;
    }
}
NGINX

sudoers deploy-shop <<'SUDO'
# The deploy user runs these for the shop service as root.
deploy ALL=(root) NOPASSWD: /usr/bin/systemctl reload shop, /usr/bin/systemctl restart shop, /usr/bin/systemctl start shop, /usr/bin/systemctl daemon-reload, /usr/bin/systemctl status shop --no-pager *, /usr/bin/journalctl -u shop --no-pager *, /usr/sbin/nginx -t, /usr/bin/pwdx *
SUDO

SERVICE=shop
RELEASE_PATH=/var/www/shop
HEALTH_URL=http://unix:/run/shop/gunicorn.sock:/health
APP=app:application
