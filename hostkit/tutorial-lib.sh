# Helpers for the tutorial-* styles (sourced by them, never run): servers set up by hand
# from the popular Flask tutorials, before any deploy tool. The app lives in one directory
# with its virtualenv inside, Gunicorn runs under a unit without ExecReload, Nginx proxies to
# its bind, and deploys were `git pull && systemctl restart`. examples/server/adopt.sh
# converts them; the host.env values a style sets (SERVICE, RELEASE_PATH, HEALTH_URL) are the
# ones adopt.sh is given and makes, so the action can deploy once it ran.
# shellcheck shell=bash

# tutorial_base: nothing of the kit's provisioning stays: no myapp unit, site, sudoers,
# /srv/myapp or /etc/myapp.env. The deploy user stays only as an account that can log in (the
# kit logs in as it to see the host is up): it is in no extra group and has no sudo rules.
# The kit's venv is kept in $S/kit-venv for tutorial_venv.
tutorial_base() {
  rm -rf "$S/kit-venv"
  cp -a "$R/srv/myapp/.venv" "$S/kit-venv"
  drop_unit myapp
  rm -rf "$R/srv/myapp" "$R/etc/myapp.env" "$R/etc/nginx/sites-available/myapp"
  rm -f "$R"/etc/sudoers.d/deploy-*
  nginx_only
  local group
  for group in www-data adm systemd-journal; do
    in_root gpasswd -d deploy "$group" >/dev/null 2>&1 || true
  done
}

# tutorial_user NAME [HOME]: a login user for the app, its home traversable by Nginx
# (the tutorials' `chmod 755 /home/NAME`).
tutorial_user() {
  in_root useradd --create-home --home-dir "${2:-/home/$1}" --shell /bin/bash "$1"
  chmod 755 "$R${2:-/home/$1}"
}

# tutorial_venv DIR OWNER: a virtualenv at DIR over Debian's Flask and Gunicorn (the kit's
# venv moved there: its scripts' #! lines and pyvenv.cfg name their path), owned by OWNER.
tutorial_venv() {
  local dir=$1 owner=$2
  mkdir -p "$(dirname "$R$dir")"
  cp -a "$S/kit-venv" "$R$dir"
  find "$R$dir" -name __pycache__ -prune -exec rm -rf {} +
  grep -rlI '/srv/myapp/.venv' "$R$dir/bin" "$R$dir/pyvenv.cfg" | xargs sed -i "s|/srv/myapp/.venv|$dir|g"
  in_root chown -hR "$owner" "$dir"
}

# tutorial_app DIR OWNER: the tutorial's app in DIR: myproject.py answers "Hello There!" at /
# (there is no health route), wsgi.py imports it; a .git directory and .gitignore as a
# clone has them. Owned by OWNER.
tutorial_app() {
  local dir=$1 owner=$2
  mkdir -p "$R$dir/.git/refs/heads"
  cat >"$R$dir/myproject.py" <<'PY'
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "<h1 style='color:blue'>Hello There!</h1>"


if __name__ == "__main__":
    app.run(host="0.0.0.0")
PY
  cat >"$R$dir/wsgi.py" <<'PY'
from myproject import app

if __name__ == "__main__":
    app.run()
PY
  printf 'flask\ngunicorn\n' >"$R$dir/requirements.txt"
  printf 'venv/\n.venv/\n*.sock\n__pycache__/\n.env\ninstance/\n' >"$R$dir/.gitignore"
  echo 'ref: refs/heads/main' >"$R$dir/.git/HEAD"
  echo 0123456789abcdef0123456789abcdef01234567 >"$R$dir/.git/refs/heads/main"
  in_root chown -hR "$owner" "$dir"
}

# tutorial_unit NAME USER GROUP WORKDIR EXECSTART [ENVIRONMENT]: the tutorial's unit, enabled:
# no ExecReload, no RuntimeDirectory; USER empty: no User= (it runs as root).
tutorial_unit() {
  local user_line="" group_line="" env_line=""
  [ -z "$2" ] || user_line="User=$2"
  [ -z "$3" ] || group_line="Group=$3"
  [ -z "${6:-}" ] || env_line="Environment=\"$6\""
  unit "$1" <<UNIT
[Unit]
Description=Gunicorn instance to serve $1
After=network.target

[Service]
$user_line
$group_line
WorkingDirectory=$4
$env_line
ExecStart=$5

[Install]
WantedBy=multi-user.target
UNIT
}

# tutorial_site NAME LISTEN SERVER_NAME SOCKET: the tutorial's Nginx site NAME, enabled (and
# only it): one server (`listen LISTEN; server_name SERVER_NAME;`) whose location / includes
# Debian's proxy_params and proxies to http://unix:SOCKET.
tutorial_site() {
  nginx_site "$1" <<NGINX
server {
    listen $2;
    server_name $3;

    location / {
        include proxy_params;
        proxy_pass http://unix:$4;
    }
}
NGINX
}
