# Helpers for the server styles in hostkit/styles/ (sourced by host-up.sh, never run).
# shellcheck shell=bash
#
# A style turns the kit's server (examples/server/provision.sh, in the image) into
# a server set up the way someone else's guide or default does it. host-up.sh
# sources the style in a subshell after the host's own files are written and
# before it boots, with:
#   R      the host's merged root (write files as "$R/etc/...", or run `in_root CMD`)
#   S      the host's state directory on this machine
#   NAME   the host name;  SUITE  bookworm, trixie or sid;  IP  the host's address
#   KIT    this directory
# and reads back what the style sets (defaults are the kit's):
#   SERVICE       the systemd unit (myapp)
#   RELEASE_PATH  the directory holding releases/, shared/, current (/srv/myapp)
#   HEALTH_URL    the action's health-url (http://unix:/run/myapp/myapp.sock:/health)
#   NGINX_URL     the nginx-url a user would give, empty when the action derives it
#   APP           module:attr of the WSGI app (wsgi:app)
#   READY         how host-up.sh checks the host serves: http(s)://NAME/path requested
#                 from this machine with NAME resolved to the host (the Host header),
#                 http://unix:/SOCKET:/path inside the host, or `none`
#   CA_CERT       a certificate on this machine that verifies the host's https

# Runs a command inside the host's root (useradd, chown, visudo, openssl, ...).
in_root() { chroot "$R" "$@"; }

# put PATH MODE OWNER: writes stdin to PATH inside the host.
put() {
  mkdir -p "$(dirname "$R$1")"
  cat >"$R$1"
  chmod "$2" "$R$1"
  in_root chown "$3" "$1"
}

# unit NAME: writes stdin as /etc/systemd/system/NAME.service and enables it.
unit() {
  put "/etc/systemd/system/$1.service" 644 root:root
  mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
  ln -sfn "/etc/systemd/system/$1.service" "$R/etc/systemd/system/multi-user.target.wants/$1.service"
}

# drop_unit NAME: removes a unit and its enablement.
drop_unit() {
  rm -f "$R/etc/systemd/system/$1.service" "$R/etc/systemd/system/multi-user.target.wants/$1.service"
}

# guide_unit EXECSTART: the unit most Flask + Gunicorn guides show for myapp (not
# examples/server's): www-data, WorkingDirectory=/srv/myapp, the EnvironmentFile,
# RuntimeDirectory for the socket, `kill -s HUP $MAINPID` to reload, Restart=on-failure.
guide_unit() {
  unit myapp <<UNIT
[Unit]
Description=Gunicorn instance to serve myapp
After=network.target

[Service]
User=www-data
Group=www-data
WorkingDirectory=/srv/myapp
EnvironmentFile=/etc/myapp.env
RuntimeDirectory=myapp
ExecStart=$1
ExecReload=/bin/kill -s HUP \$MAINPID
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
}

# gunicorn_docs_unit EXECSTART [SOCKET]: in place of the kit's myapp unit, gunicorn.service
# of Gunicorn's deployment docs (Type=notify, user someuser, KillMode=mixed) running
# EXECSTART, and the kit's sudoers rules for the unit gunicorn. With SOCKET (the docs' socket
# activation) the service has Requires=SOCKET and PrivateTmp=true and is written but not
# enabled: the socket unit starts it. Without it the service is enabled and has no
# PrivateTmp (a private /tmp would hide a socket in /tmp from Nginx).
gunicorn_docs_unit() {
  local exec_start=$1 socket=${2:-}
  drop_unit myapp
  {
    printf '[Unit]\nDescription=gunicorn daemon\n'
    [ -z "$socket" ] || printf 'Requires=%s\n' "$socket"
    cat <<UNIT
After=network.target

[Service]
Type=notify
NotifyAccess=main
User=someuser
Group=someuser
WorkingDirectory=/srv/myapp
ExecStart=$exec_start
ExecReload=/bin/kill -s HUP \$MAINPID
KillMode=mixed
TimeoutStopSec=5
UNIT
    [ -z "$socket" ] || echo PrivateTmp=true
    printf '\n[Install]\nWantedBy=multi-user.target\n'
  } | if [ -z "$socket" ]; then unit gunicorn; else put /etc/systemd/system/gunicorn.service 644 root:root; fi
  sed -e '/^#/d' -e 's/myapp/gunicorn/g' "$KIT/../examples/server/sudoers-deploy" | sudoers deploy-gunicorn
}

# gunicorn_docs_locations UPSTREAM INDENT [bare]: prints the two locations of the server in
# Gunicorn's Nginx example: `/` tries a static file first (try_files $uri @proxy_to_app),
# the named location @proxy_to_app sets the forwarding headers and proxies to
# http://UPSTREAM. Every non-empty line is indented by INDENT; with `bare`, without the
# example's comments.
gunicorn_docs_locations() {
  local upstream=$1 indent=$2 bare=${3:-}
  cat <<NGINX | sed -e "${bare:+/^ *#/d}" -e "/./s/^/$indent/"
location / {
  # checks for static file, if not found proxy to app
  try_files \$uri @proxy_to_app;
}

location @proxy_to_app {
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto \$scheme;
  proxy_set_header Host \$http_host;
  # we don't want nginx trying to do something clever with
  # redirects, we set the Host: header above already.
  proxy_redirect off;
  proxy_pass http://$upstream;
}
NGINX
}

# nginx_only: disables every Nginx site and conf.d file, so the style's site is the only one.
nginx_only() {
  rm -f "$R"/etc/nginx/sites-enabled/* "$R"/etc/nginx/conf.d/*.conf
}

# nginx_site NAME: writes stdin as sites-available/NAME and enables it (and only it).
nginx_site() {
  nginx_only
  put "/etc/nginx/sites-available/$1" 644 root:root
  ln -sfn "/etc/nginx/sites-available/$1" "$R/etc/nginx/sites-enabled/$1"
}

# sudoers FILE: installs stdin as /etc/sudoers.d/FILE (440) after visudo accepts it,
# replacing the kit's rules for the deploy user.
sudoers() {
  rm -f "$R"/etc/sudoers.d/deploy-*
  put "/etc/sudoers.d/$1.new" 440 root:root
  in_root visudo -cqf "/etc/sudoers.d/$1.new"
  mv "$R/etc/sudoers.d/$1.new" "$R/etc/sudoers.d/$1"
}

# v0_module FILE ATTR [reads-secret]: writes release v0's WSGI module (hostkit/image/v0-wsgi.py,
# which answers /health with its release id) as FILE, its Flask object named ATTR; with
# a third argument it also reads SECRET_KEY from the environment at import (KeyError without it).
v0_module() {
  local file=$1 attr=$2
  sed -e "s/^app = Flask(__name__)$/$attr = Flask(__name__)/" -e "s/^@app\\./@$attr./" \
    "$KIT/image/v0-wsgi.py" >"$R$file"
  if [ -n "${3:-}" ]; then
    sed -i 's/^RELEASE = read_release_id()$/&\nSECRET_KEY = os.environ["SECRET_KEY"]/' "$R$file"
    grep -q '^SECRET_KEY = os.environ\["SECRET_KEY"\]$' "$R$file"
  fi
  grep -q "^$attr = Flask(__name__)$" "$R$file"
  [ "$attr" = app ] || ! grep -q '^app = \|@app\.' "$R$file"
}

# add_hosts_name NAME: NAME resolves to the host's own address inside the host (as DNS would).
add_hosts_name() {
  echo "$IP $1" >>"$R/etc/hosts"
}

# Prints what the style set, for host-up.sh (values must not contain white space).
style_env() {
  local var
  for var in SERVICE RELEASE_PATH HEALTH_URL NGINX_URL APP READY CA_CERT; do
    [[ ! ${!var} =~ [[:space:]] ]] || { echo "style: $var has white space: ${!var}" >&2; return 1; }
    printf '%s=%q\n' "$var" "${!var}"
  done
}
