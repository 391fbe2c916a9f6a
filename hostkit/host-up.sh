#!/usr/bin/env bash
# Starts one test host: a systemd-nspawn container whose PID 1 is systemd,
# with sshd, Gunicorn under the chosen unit, and Nginx, on its own network
# namespace attached to the bridge zdd-br0.
#   hostkit/host-up.sh NAME [--unit fixed|guide|preload] [--suite bookworm|trixie|sid] [--style STYLE]
# --style kit (the default) is the server examples/server/provision.sh makes, with
# the --unit variant; any other STYLE is hostkit/styles/STYLE.sh, applied on top
# of it before boot (its own unit, Nginx site, users, sudoers, ...).
# Prints a sourceable host.env (also written to the host's state directory).
set -euo pipefail
# shellcheck source=hostkit/lib.sh
. "$(dirname "$0")/lib.sh"

NAME=${1:-}
shift || true
UNIT=
SUITE=bookworm
STYLE=kit
while [ $# -gt 0 ]; do
  case "$1" in
    --unit) UNIT=${2:-}; shift ;;
    --suite) SUITE=${2:-}; shift ;;
    --style) STYLE=${2:-}; shift ;;
    *) die "unknown option: $1" ;;
  esac
  shift
done
[[ $NAME =~ ^[a-z][a-z0-9-]{0,20}$ ]] || die "host name must be 1-21 lower-case letters, digits or -, starting with a letter"
check_suite "$SUITE"
if [ "$STYLE" = kit ]; then
  UNIT=${UNIT:-fixed}
  case "$UNIT" in fixed | guide | preload) ;; *) die "--unit must be fixed, guide or preload" ;; esac
else
  if ! [[ $STYLE =~ ^[a-z][a-z0-9-]*$ ]] || [ ! -f "$KIT/styles/$STYLE.sh" ]; then
    die "unknown style '$STYLE' (styles: kit $(cd "$KIT/styles" && printf '%s ' *.sh | sed 's/\.sh / /g'))"
  fi
  [ -z "$UNIT" ] || die "--unit applies to the kit style only; style $STYLE brings its own unit"
  UNIT=style
fi

ROOTFS=$("$KIT/build-rootfs.sh" --suite "$SUITE")
# Each host's systemd takes several inotify instances; the kernel's default of 128
# per user stops at about twenty hosts.
if [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 1024)" -lt 1024 ]; then
  sysctl -q -w fs.inotify.max_user_instances=1024 || true
fi
S=$STATE_ROOT/$NAME
mkdir -p "$STATE_ROOT"
[ ! -e "$S" ] || die "host $NAME exists ($S); run hostkit/host-down.sh $NAME first"

# A free index N (IP 10.231.0.(10+N), veth zvN), taken under a lock so hosts can start in parallel.
exec 8>"$STATE_ROOT/.alloc.lock"
flock 8
N=
for i in $(seq 1 200); do
  if ! grep -qx "$i" "$STATE_ROOT"/*/index 2>/dev/null && ! ip link show "zv$i" >/dev/null 2>&1; then N=$i; break; fi
done
[ -n "$N" ] || die "no free host index (200 hosts running?)"
mkdir -p "$S"/{upper,work,root}
echo "$N" >"$S/index"
flock -u 8

IP=10.231.0.$((10 + N))
NETNS=zdd-$NAME
VETH=zv$N
# What the tests need to know about the app; a style changes them.
SERVICE=myapp
RELEASE_PATH=/srv/myapp
HEALTH_URL=http://unix:/run/myapp/myapp.sock:/health
NGINX_URL=
APP=wsgi:app
READY=http://$IP/health
CA_CERT=
fail() {
  echo "hostkit: host $NAME failed to start: $*" >&2
  [ -f "$S/console.log" ] && { echo "--- console (tail) ---" >&2; tail -n 30 "$S/console.log" >&2; }
  if [ -n "${INIT_PID:-}" ]; then
    echo "--- journalctl -u $SERVICE ---" >&2
    nsenter -t "$INIT_PID" -a journalctl -u "$SERVICE" -n 30 --no-pager >&2 2>/dev/null || true
  fi
  "$KIT/host-down.sh" "$NAME" >/dev/null 2>&1 || true
  exit 1
}

# Network: the bridge once, then a namespace and a veth pair per host.
exec 8>"$STATE_ROOT/.bridge.lock"
flock 8
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
  ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
fi
flock -u 8
ip netns add "$NETNS"
ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
ip link set "$VETH" master "$BRIDGE" up
ip -n "$NETNS" link set lo up
ip -n "$NETNS" addr add "$IP/24" dev eth0
ip -n "$NETNS" link set eth0 up
# A host that had this IP before had another MAC: forget its neighbour entry, or the
# runner keeps sending to the old MAC until the entry expires (about 30 s).
ip neigh flush to "$IP" dev "$BRIDGE" 2>/dev/null || true

# The host's own files, in the overlay's upper layer.
mount -t overlay "zdd-$NAME" -o "lowerdir=$ROOTFS,upperdir=$S/upper,workdir=$S/work" "$S/root"
R=$S/root
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$R/etc/machine-id"
echo "$NAME" >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost\n' "$NAME" >"$R/etc/hosts"
ssh-keygen -q -t ed25519 -N '' -C "$NAME-host" -f "$R/etc/ssh/ssh_host_ed25519_key"
echo "$IP $(cut -d' ' -f1,2 "$R/etc/ssh/ssh_host_ed25519_key.pub")" >"$S/known_hosts"
FINGERPRINT=$(ssh-keygen -lf "$R/etc/ssh/ssh_host_ed25519_key.pub" | cut -d' ' -f2)
ssh-keygen -q -t ed25519 -N '' -C "deploy@$NAME" -f "$S/id_ed25519"
uid=$(awk -F: '$1=="deploy"{print $3}' "$R/etc/passwd")
gid=$(awk -F: '$1=="deploy"{print $4}' "$R/etc/passwd")
install -d -m 700 -o "$uid" -g "$gid" "$R/home/deploy/.ssh"
install -m 600 -o "$uid" -g "$gid" "$S/id_ed25519.pub" "$R/home/deploy/.ssh/authorized_keys"
case "$UNIT" in
  fixed) cp "$REPO/examples/server/myapp.service" "$R/etc/systemd/system/myapp.service" ;;
  guide) cp "$KIT/units/guide.service" "$R/etc/systemd/system/myapp.service" ;;
  preload) sed -f "$KIT/units/preload.sed" "$REPO/examples/server/myapp.service" >"$R/etc/systemd/system/myapp.service" ;;
  style) ;;
esac
grep -q -- '--preload' "$R/etc/systemd/system/myapp.service" || [ "$UNIT" != preload ] || fail "preload variant lost --preload"
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sfn /etc/systemd/system/myapp.service "$R/etc/systemd/system/multi-user.target.wants/myapp.service"

# The style, applied to the merged root before boot. It runs in a subshell with
# the helpers of style-lib.sh and reports what it changed through style.env.
if [ "$STYLE" != kit ]; then
  (
    # shellcheck source=hostkit/style-lib.sh
    . "$KIT/style-lib.sh"
    # shellcheck disable=SC1090
    . "$KIT/styles/$STYLE.sh"
    style_env >"$S/style.env"
  ) >>"$S/style.log" 2>&1 || { tail -n 20 "$S/style.log" >&2; fail "style $STYLE failed"; }
  # shellcheck disable=SC1091
  . "$S/style.env"
fi
[[ $READY =~ ^(none|http://unix:/[^:]+:/.*|https?://[^/]+/.*)$ ]] || fail "READY is not none, http://unix:/SOCKET:/PATH or an http(s) URL: $READY"

# Boot, in a cgroup subtree of its own so teardown can find every process.
for root in $(cgroup_roots); do mkdir -p "$root/zdd-hostkit/$NAME"; done
(
  for root in $(cgroup_roots); do echo "$BASHPID" >"$root/zdd-hostkit/$NAME/cgroup.procs"; done
  # systemd >= 256 (trixie, sid) boots on this kind of hybrid cgroup machine only
  # when nspawn gives it a unified hierarchy.
  [ "$SUITE" = bookworm ] || export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
  exec systemd-nspawn --quiet --boot --register=no --keep-unit \
    -D "$R" --machine="$NAME" --hostname="$NAME" \
    --network-namespace-path="/run/netns/$NETNS" \
    --console=read-only --link-journal=no --resolv-conf=off --timezone=off
) >"$S/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!
echo "$NSPAWN_PID" >"$S/nspawn.pid"

# The container's PID 1, as seen from here (for nsenter).
INIT_PID=
for _ in $(seq 1 100); do
  for p in $(cat "/proc/$NSPAWN_PID/task/$NSPAWN_PID/children" 2>/dev/null); do
    if [ "$(awk '/^NSpid:/{print $NF}' "/proc/$p/status" 2>/dev/null)" = 1 ]; then INIT_PID=$p; fi
  done
  [ -n "$INIT_PID" ] && break
  kill -0 "$NSPAWN_PID" 2>/dev/null || fail "systemd-nspawn exited"
  sleep 0.05
done
[ -n "$INIT_PID" ] || fail "no container init found"

cat >"$S/host.env" <<ENV
HOST_NAME=$NAME
HOST_IP=$IP
HOST_PORT=22
HOST_USER=deploy
HOST_KEY=$S/id_ed25519
HOST_KNOWN_HOSTS=$S/known_hosts
HOST_FINGERPRINT=$FINGERPRINT
HOST_UNIT=$UNIT
HOST_STYLE=$STYLE
HOST_SUITE=$SUITE
HOST_SERVICE=$SERVICE
HOST_RELEASE_PATH=$RELEASE_PATH
HOST_HEALTH_URL=$HEALTH_URL
HOST_NGINX_URL=$NGINX_URL
HOST_APP=$APP
HOST_READY=$READY
HOST_CA_CERT=$CA_CERT
HOST_STATE=$S
HOST_NSPAWN_PID=$NSPAWN_PID
HOST_INIT_PID=$INIT_PID
HOST_NETNS=$NETNS
HOST_VETH=$VETH
ENV

# Ready when sshd answers, the app answers at $READY (through Nginx, or on the
# Gunicorn socket inside the host; `none`: nothing serves, the unit has settled),
# and a pinned-key login works. Booting many hosts at once on a small machine is slow:
# ZDD_HOST_READY_SECONDS (default 90) bounds the wait.
wait_s=${ZDD_HOST_READY_SECONDS:-90}
deadline=$((SECONDS + wait_s))
until [ "$(timeout 1 bash -c "exec 3<>/dev/tcp/$IP/22 && head -c 4 <&3" 2>/dev/null)" = "SSH-" ]; do
  [ $SECONDS -lt $deadline ] || fail "sshd did not answer within $wait_s s"
  sleep 0.1
done
ready() {
  case "$READY" in
    none)
      # nothing serves yet: ready once the unit has settled (failed or inactive)
      case "$(nsenter -t "$INIT_PID" -a systemctl is-active "$SERVICE" 2>/dev/null)" in
        failed | inactive) return 0 ;; *) return 1 ;;
      esac
      ;;
    http://unix:*)
      local rest=${READY#http://unix:}
      nsenter -t "$INIT_PID" -a curl -fsS -m 2 -o /dev/null --unix-socket "${rest%%:*}" "http://localhost${rest#*:}" 2>/dev/null
      ;;
    *) curl_host "$READY" "$IP" "$CA_CERT" -fsS -m 2 -o /dev/null 2>/dev/null ;;
  esac
}
until ready; do
  [ $SECONDS -lt $deadline ] || if [ "$READY" = none ]; then
    fail "$SERVICE did not settle (failed or inactive) within $wait_s s"
  else
    fail "$READY did not answer 200 within $wait_s s"
  fi
  sleep 0.1
done
ssh -q -i "$S/id_ed25519" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$S/known_hosts" \
  -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 "deploy@$IP" true || fail "ssh login as deploy failed"

log "host $NAME up: $IP ($SUITE, style $STYLE, $UNIT unit)"
cat "$S/host.env"
