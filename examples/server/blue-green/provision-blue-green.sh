# shellcheck shell=bash
# Step 6 of provision.sh for --strategy blue-green; provision.sh sources it after
# steps 1-5 (packages, deploy user, releases/ and shared/, venv, EnvironmentFile)
# with APP, ROOT, DEPLOY_USER, HERE, START, render and say set. Idempotent:
#   - installs myapp@.service (the template), myapp-live.service (enabled: starts
#     the live instance at boot), the blue-green sudoers rules and, once an
#     instance serves, the blue-green Nginx site;
#   - creates venvs/ (the per-release environments) and links each existing release's
#     .venv to the shared venv, so the template can start releases made before;
#   - creates slots/; when a release is live (`current` exists) and live.sock does
#     not, pins that release in slots/blue and points live.sock at myapp@blue;
#   - unless --no-start: starts the live instance, waits until it answers on its
#     own socket, switches Nginx to live.sock (nginx -t, reload), and then stops
#     and disables a running reload unit (myapp.service) once its queue is empty,
#     so moving from the reload layout drops no request. An existing live.sock is
#     never changed: which instance is live belongs to the deploys.
BG=$HERE/blue-green
as_deploy() { runuser -u "$DEPLOY_USER" -- "$@"; }
# atomic_link TARGET LINK: LINK -> TARGET, replaced in one rename, owned by the deploy user
atomic_link() { as_deploy ln -sfn "$1" "$2.tmp" && as_deploy mv -T "$2.tmp" "$2"; }
sock_of() { echo "/run/$APP-$1/gunicorn.sock"; }
# The listen queue of a Gunicorn socket (connections not accepted yet), 0 if unknown.
accept_queue() { ss -xlnH 2>/dev/null | awk -v s="$1" '$5 == s { print $3 }' | head -n 1; }

# 6a. units and sudoers
render "$BG/myapp@.service" >"/etc/systemd/system/$APP@.service"
render "$BG/myapp-live.service" >"/etc/systemd/system/$APP-live.service"
tmp=$(mktemp)
render "$BG/sudoers-deploy" >"$tmp"
visudo -cqf "$tmp"
install -m 440 "$tmp" "/etc/sudoers.d/$DEPLOY_USER-$APP"
rm -f "$tmp"

# 6b. slots/ and live.sock, from the release `current` points at
install -d -o "$DEPLOY_USER" -g "$DEPLOY_USER" -m 755 "$ROOT/slots"
if [ -L "$ROOT/current" ] && [ ! -L "$ROOT/live.sock" ]; then
  release=$(readlink -f "$ROOT/current")
  if [ "$(dirname "$release")" != "$ROOT/releases" ] || [ ! -d "$release" ]; then
    echo "provision: $ROOT/current does not point into $ROOT/releases/" >&2
    exit 1
  fi
  id=$(basename "$release")
  if [ "$(readlink -f "$ROOT/slots/blue" 2>/dev/null)" != "$release" ]; then
    # never repoint the slot of a running instance (compared as text: in a chroot,
    # systemctl ignores the command and exits 0 without printing a state)
    [ "$(systemctl is-active "$APP@blue" 2>/dev/null)" != active ] \
      || { echo "provision: $APP@blue runs another release than current; stop it first" >&2; exit 1; }
    say "pinning release $id in slots/blue"
    atomic_link "../releases/$id" "$ROOT/slots/blue"
  fi
  say "live.sock -> $APP@blue"
  atomic_link "$(sock_of blue)" "$ROOT/live.sock"
fi

# 6b'. per-release environments: the deploys build venvs/<key> and link each release's
#      .venv to its own; a release made before runs the shared venv (linked here), so
#      the new template can start it, and a host moved from the previous template keeps working
install -d -o "$DEPLOY_USER" -g "$DEPLOY_USER" -m 755 "$ROOT/venvs"
for release in "$ROOT"/releases/*/; do
  [ -d "$release" ] || continue
  if [ ! -e "$release.venv" ] && [ ! -L "$release.venv" ]; then
    say "linking $(basename "$release")/.venv to the shared venv"
    as_deploy ln -s ../../.venv "$release.venv"
  fi
done

site() {
  render "$BG/nginx-myapp.conf" >"/etc/nginx/sites-available/$APP"
  ln -sfn "/etc/nginx/sites-available/$APP" "/etc/nginx/sites-enabled/$APP"
  rm -f /etc/nginx/sites-enabled/default
}

if [ "$START" = 0 ]; then
  site
  systemctl disable "$APP.service" >/dev/null 2>&1 || true
  systemctl enable "$APP-live.service" >/dev/null 2>&1 || true
  return 0
fi

systemctl daemon-reload
systemctl enable "$APP-live.service" >/dev/null 2>&1
if [ ! -L "$ROOT/live.sock" ]; then
  site
  nginx -t && systemctl reload nginx
  say "no release yet: the first deploy pins it in slots/blue, points live.sock at $APP@blue and starts it"
  return 0
fi

# 6c. the live instance answers on its own socket before Nginx is sent to it
case "$(readlink "$ROOT/live.sock")" in
  "$(sock_of blue)") live=blue ;;
  "$(sock_of green)") live=green ;;
  *) echo "provision: $ROOT/live.sock points at neither $APP@blue nor $APP@green" >&2; exit 1 ;;
esac
systemctl start "$APP@$live"
say "waiting for $APP@$live to answer on $(sock_of "$live")"
answered=0
for _ in $(seq 1 120); do
  code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' --unix-socket "$(sock_of "$live")" http://localhost/ 2>/dev/null) || true
  case "$code" in 000 | '') sleep 0.5 ;; *) answered=1; break ;; esac
done
[ "$answered" = 1 ] || {
  echo "provision: $APP@$live did not answer within 60 s (journalctl -u $APP@$live); Nginx left unchanged" >&2
  exit 1
}

# 6d. Nginx to live.sock, then the reload unit (if any) drains and stops
site
nginx -t && systemctl reload nginx
if systemctl is-active -q "$APP.service"; then
  old=$(systemctl show -P ExecStart "$APP.service" | grep -o 'unix:[^ ;]*' | head -n 1 | cut -d: -f2)
  sleep 1 # Nginx's old workers finish the requests they already sent
  # connections already queued on the old socket are served before it stops
  for _ in $(seq 1 150); do
    [ -n "$old" ] || break
    q=$(accept_queue "$old")
    [ "${q:-0}" = 0 ] && break
    sleep 0.2
  done
  say "traffic is on $APP@$live: stopping and disabling $APP.service"
  systemctl stop "$APP.service"
fi
systemctl disable "$APP.service" >/dev/null 2>&1 || true
