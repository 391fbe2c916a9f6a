#!/usr/bin/env bash
# Provisions a Debian/Ubuntu host for flask-zero-downtime-deploy. Idempotent:
# run it again after changing anything. As root:
#   examples/server/provision.sh [--strategy reload|blue-green] [--authorized-key FILE] [--no-start] [--skip-packages]
# Environment: APP_NAME (default myapp), DEPLOY_USER (default deploy).
#   --strategy S           reload (default): one unit, reloaded (HUP) per deploy;
#                          blue-green: the template unit in blue-green/, two instances
#   --authorized-key FILE  public key the workflow's private-key matches
#   --no-start             do not start services (building an image in a chroot)
#   --skip-packages        the packages are already installed
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
APP=${APP_NAME:-myapp}
DEPLOY_USER=${DEPLOY_USER:-deploy}
ROOT=/srv/$APP
START=1
PACKAGES=1
AUTH_KEY=
STRATEGY=reload
while [ $# -gt 0 ]; do
  case "$1" in
    --no-start) START=0 ;;
    --skip-packages) PACKAGES=0 ;;
    --authorized-key) AUTH_KEY=$2; shift ;;
    --strategy) STRATEGY=${2:-}; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $APP =~ ^[a-z][a-z0-9_-]*$ ]] || { echo "APP_NAME must be lower-case letters, digits, _ or -" >&2; exit 2; }
[[ $DEPLOY_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || { echo "DEPLOY_USER is not a valid user name" >&2; exit 2; }
case "$STRATEGY" in reload | blue-green) ;; *) echo "--strategy must be reload or blue-green" >&2; exit 2 ;; esac
say() { echo "provision: $*" >&2; }
# Files are written for the app name `myapp`; substitute the real one.
render() { sed -e "s/myapp/$APP/g" -e "s/^deploy /$DEPLOY_USER /" "$1"; }

# 1. packages (Debian's: no PyPI needed for Flask, Gunicorn, Flask-Migrate)
if [ "$PACKAGES" = 1 ]; then
  say "installing packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx gunicorn python3-gunicorn python3-flask \
    python3-venv python3-flask-migrate python3-flask-sqlalchemy curl procps sudo >/dev/null
fi

# 2. the deploy user: reads the journal (systemd-journal), Nginx logs (adm)
#    and the EnvironmentFile (www-data); owns the releases.
if ! id "$DEPLOY_USER" >/dev/null 2>&1; then
  say "creating user $DEPLOY_USER"
  useradd --create-home --shell /bin/bash "$DEPLOY_USER"
fi
usermod -aG systemd-journal,adm,www-data "$DEPLOY_USER"
home=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
install -d -m 700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$home/.ssh"
if [ -n "$AUTH_KEY" ]; then
  touch "$home/.ssh/authorized_keys"
  grep -qxF "$(cat "$AUTH_KEY")" "$home/.ssh/authorized_keys" || cat "$AUTH_KEY" >>"$home/.ssh/authorized_keys"
  chown "$DEPLOY_USER:$DEPLOY_USER" "$home/.ssh/authorized_keys"
  chmod 600 "$home/.ssh/authorized_keys"
fi

# 3. the release layout: releases/ and current owned by the deploy user;
#    shared/ group-writable for the app (www-data), setgid so files stay in the group.
install -d -o "$DEPLOY_USER" -g "$DEPLOY_USER" -m 755 "$ROOT" "$ROOT/releases"
install -d -o "$DEPLOY_USER" -g www-data -m 2775 "$ROOT/shared"

# 4. the virtualenv, over Debian's Flask and Gunicorn. Such a venv has no
#    bin/gunicorn; write the console script pip would have generated.
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  say "creating $ROOT/.venv"
  python3 -m venv --system-site-packages "$ROOT/.venv"
fi
if [ ! -x "$ROOT/.venv/bin/gunicorn" ]; then
  cat >"$ROOT/.venv/bin/gunicorn" <<PY
#!$ROOT/.venv/bin/python3
# Console script for Gunicorn in this venv (Gunicorn itself comes from Debian).
import re
import sys
from gunicorn.app.wsgiapp import run
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(run())
PY
  chmod 755 "$ROOT/.venv/bin/gunicorn"
fi
chown -R "$DEPLOY_USER:$DEPLOY_USER" "$ROOT/.venv"

# 5. the EnvironmentFile: root:www-data 640 (the app and the deploy user read it)
if [ ! -f "/etc/$APP.env" ]; then
  say "writing /etc/$APP.env"
  umask 027
  {
    echo "# Environment of the $APP service (EnvironmentFile). Values are secrets."
    echo "SECRET_KEY=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
    echo "DATABASE_URL=sqlite:///$ROOT/shared/app.db"
  } >"/etc/$APP.env"
  umask 022
fi
chown root:www-data "/etc/$APP.env"
chmod 640 "/etc/$APP.env"

if [ "$STRATEGY" = blue-green ]; then
  # shellcheck source=examples/server/blue-green/provision-blue-green.sh
  . "$HERE/blue-green/provision-blue-green.sh"
  say "done: $APP in $ROOT (blue-green), deploy user $DEPLOY_USER"
  exit 0
fi

# 6. the unit, the Nginx site, the sudoers rules (validated before install)
render "$HERE/myapp.service" >"/etc/systemd/system/$APP.service"
render "$HERE/nginx-myapp.conf" >"/etc/nginx/sites-available/$APP"
ln -sfn "/etc/nginx/sites-available/$APP" "/etc/nginx/sites-enabled/$APP"
rm -f /etc/nginx/sites-enabled/default
tmp=$(mktemp)
render "$HERE/sudoers-deploy" >"$tmp"
visudo -cqf "$tmp"
install -m 440 "$tmp" "/etc/sudoers.d/$DEPLOY_USER-$APP"
rm -f "$tmp"
systemctl enable "$APP.service" >/dev/null 2>&1 || true

if [ "$START" = 1 ]; then
  systemctl daemon-reload
  if [ -L "$ROOT/current" ]; then
    systemctl restart "$APP"
  else
    say "no $ROOT/current yet: deploy a first release, then: systemctl start $APP"
  fi
  nginx -t && systemctl reload nginx
fi
say "done: $APP in $ROOT, deploy user $DEPLOY_USER"
