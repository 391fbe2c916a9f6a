#!/usr/bin/env bash
# Builds the test hosts' Debian root filesystem once per suite and caches it:
#   /var/cache/zdd-hostkit/rootfs-<suite>-<key>.tar.zst  and the extracted rootfs-<suite>-<key>/
# <key> hashes the suite, this script and every file the image is made from, so
# editing them rebuilds. Prints the rootfs path (used read-only as the overlay lower layer).
#   hostkit/build-rootfs.sh [--suite bookworm|trixie|sid]
# (default bookworm: Debian 12; trixie: Debian 13; sid: Debian unstable, today's Gunicorn)
set -euo pipefail
# shellcheck source=hostkit/lib.sh
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE=${2:-}; shift ;;
    *) die "unknown option: $1" ;;
  esac
  shift
done
check_suite "$SUITE"
ensure_host_packages

# (The unit variants, styles and lib.sh are applied when a host starts, not baked in.)
key=$(cat <(echo "$SUITE") "$KIT/build-rootfs.sh" "$KIT"/image/* $(find "$REPO/examples/server" -type f ! -name "adopt.*" | LC_ALL=C sort) | sha256sum | cut -c1-16)
ROOTFS=$CACHE/rootfs-$SUITE-$key
TARBALL=$ROOTFS.tar.zst
mkdir -p "$CACHE"
# One lock per suite: a trixie build does not hold up bookworm hosts.
exec 9>"$CACHE/build-$SUITE.lock"
flock 9

if [ -f "$ROOTFS/.zdd-complete" ]; then
  echo "$ROOTFS"
  exit 0
fi
rm -rf "$ROOTFS" "$ROOTFS.build"
if [ -f "$TARBALL" ]; then
  log "restoring $TARBALL"
  mkdir -p "$ROOTFS.build"
  zstd -dc "$TARBALL" | tar --numeric-owner --xattrs -xf - -C "$ROOTFS.build"
  mv "$ROOTFS.build" "$ROOTFS"
  echo "$ROOTFS"
  exit 0
fi

# The mirrors this machine's apt already uses (no other host is reachable).
uris=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
  sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' | tr ' ' '\n' | grep -v '^$' || true)
MIRROR=$(echo "$uris" | grep -v security | head -n1)
SECURITY=$(echo "$uris" | grep security | head -n1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}
# On a machine that is not Debian (GitHub's Ubuntu runners), its mirrors hold no Debian suites.
MIRROR=${ZDD_DEBIAN_MIRROR:-$MIRROR}
SECURITY=${ZDD_DEBIAN_SECURITY:-$SECURITY}

# A release has its -updates and -security suites; sid (unstable) has neither, and the
# mirror may serve its Release file past Valid-Until (sid's is renewed daily).
if [ "$SUITE" = sid ]; then
  sources=("deb $MIRROR sid main")
  aptopts=(--aptopt='Acquire::Check-Valid-Until "false"')
else
  sources=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main")
  aptopts=()
fi

# A Celery worker on Redis for the hosts whose app has background workers (style
# celery): Debian's packages, on the stable suites (sid moves too fast to pin them).
# redis-server is disabled here; the style enables it.
extra=
[ "$SUITE" = sid ] || extra=,redis-server,python3-celery,python3-redis

BUILD=$ROOTFS.build
log "building the $SUITE root filesystem with mmdebstrap from $MIRROR (about a minute)"
started=$(date +%s)
mmdebstrap --quiet --variant=minbase --mode=root \
  --aptopt='APT::Install-Recommends "false"' "${aptopts[@]}" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --include=systemd,systemd-sysv,dbus,openssh-server,sudo,passwd,adduser,nginx,gunicorn,python3-gunicorn,python3-flask,python3-venv,python3-flask-migrate,python3-flask-sqlalchemy,curl,procps,iproute2,psmisc,openssl$extra \
  "$SUITE" "$BUILD" "${sources[@]}" >&2

# Provision with the same script users run (examples/server/provision.sh).
cleanup_chroot() { umount -l "$BUILD/proc" "$BUILD/dev" 2>/dev/null || true; }
trap cleanup_chroot EXIT
mount -t proc proc "$BUILD/proc"
mount --bind /dev "$BUILD/dev"
printf '#!/bin/sh\nexit 101\n' >"$BUILD/usr/sbin/policy-rc.d"
chmod 755 "$BUILD/usr/sbin/policy-rc.d"
mkdir -p "$BUILD/tmp/provision"
cp -r "$REPO"/examples/server/. "$BUILD/tmp/provision/"
chroot "$BUILD" /tmp/provision/provision.sh --no-start --skip-packages
rm -rf "$BUILD/tmp/provision" "$BUILD/usr/sbin/policy-rc.d"

# Release v0 and current, as a deploy would have left them.
install -d -o 0 -g 0 "$BUILD/srv/myapp/releases/v0"
cp "$KIT/image/v0-wsgi.py" "$BUILD/srv/myapp/releases/v0/wsgi.py"
echo '{"id": "v0"}' >"$BUILD/srv/myapp/releases/v0/.zdd-release.json"
ln -sfn releases/v0 "$BUILD/srv/myapp/current"
chroot "$BUILD" chown -hR deploy:deploy /srv/myapp/releases /srv/myapp/current

# sshd: one ed25519 host key (made per host at start), keys only, no root.
cat >"$BUILD/etc/ssh/sshd_config.d/zdd.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
CONF
rm -f "$BUILD"/etc/ssh/ssh_host_*

# Container hygiene: a volatile journal, no timers or gettys, no machine id.
mkdir -p "$BUILD/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$BUILD/etc/systemd/journald.conf.d/volatile.conf"
for unit in apt-daily.timer apt-daily-upgrade.timer man-db.timer logrotate.timer fstrim.timer \
            e2scrub_all.timer dpkg-db-backup.timer console-getty.service getty@tty1.service; do
  chroot "$BUILD" systemctl mask "$unit" >/dev/null 2>&1 || true
done
chroot "$BUILD" systemctl disable redis-server.service >/dev/null 2>&1 || true
: >"$BUILD/etc/machine-id"
chroot "$BUILD" apt-get clean
rm -rf "$BUILD"/var/lib/apt/lists/*
cleanup_chroot
trap - EXIT

touch "$BUILD/.zdd-complete"
log "packing $TARBALL"
tar --numeric-owner --xattrs -C "$BUILD" -cf - . | zstd -q -T0 -10 -o "$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
mv "$BUILD" "$ROOTFS"
# Older images of this suite are no longer needed, unless a running host still
# uses one as its overlay's lower layer. (Images from before suites were named
# rootfs-<key> and were bookworm.)
for old in "$CACHE"/rootfs-*; do
  base=${old##*/}
  base=${base%.tar.zst}
  [[ $base =~ ^rootfs-$SUITE-[0-9a-f]{16}$ ]] || { [ "$SUITE" = bookworm ] && [[ $base =~ ^rootfs-[0-9a-f]{16}$ ]]; } || continue
  [ "$CACHE/$base" != "$ROOTFS" ] || continue
  grep -qE "lowerdir=$CACHE/${base}[,: ]" /proc/mounts && continue
  rm -rf "$old"
done
log "$SUITE root filesystem ready in $(($(date +%s) - started)) s"
echo "$ROOTFS"
