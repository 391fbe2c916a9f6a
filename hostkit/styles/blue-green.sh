# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style blue-green: the kit's server moved to the blue-green layout by the script users
# run, `provision.sh --strategy blue-green` (with --no-start, as in the image build):
# the template unit myapp@.service, myapp-live.service enabled, the Nginx site proxying
# to /srv/myapp/live.sock (no upstream keepalive), the blue-green sudoers rules.
# Release v0 is pinned in slots/blue and live.sock points at /run/myapp-blue/gunicorn.sock;
# myapp.service stays installed but disabled. At boot myapp-live starts myapp@blue,
# which serves v0 through Nginx.
# slots/blue first: provision.sh pins `current` there only when no instance runs, and
# systemd 257 (trixie) answers `systemctl is-active` with 0 inside a chroot.
install -d "$R/srv/myapp/slots"
ln -sfn ../releases/v0 "$R/srv/myapp/slots/blue"
in_root chown -h deploy:deploy /srv/myapp/slots /srv/myapp/slots/blue
rm -rf "$R/tmp/provision"
mkdir -p "$R/tmp/provision"
cp -r "$KIT/../examples/server/." "$R/tmp/provision/"
in_root /tmp/provision/provision.sh --strategy blue-green --no-start --skip-packages
rm -rf "$R/tmp/provision"

# What the boot depends on: fail here, not as a host that never answers.
[ "$(readlink "$R/srv/myapp/slots/blue")" = ../releases/v0 ] || { echo "slots/blue is not ../releases/v0" >&2; exit 1; }
[ "$(readlink "$R/srv/myapp/live.sock")" = /run/myapp-blue/gunicorn.sock ] || { echo "live.sock does not point at myapp@blue" >&2; exit 1; }
[ "$(in_root stat -c %U /srv/myapp/live.sock)" = deploy ] || { echo "live.sock is not the deploy user's" >&2; exit 1; }
[ -L "$R/etc/systemd/system/multi-user.target.wants/myapp-live.service" ] || { echo "myapp-live is not enabled" >&2; exit 1; }
[ ! -e "$R/etc/systemd/system/multi-user.target.wants/myapp.service" ] || { echo "myapp.service is still enabled" >&2; exit 1; }
grep -q 'proxy_pass http://unix:/srv/myapp/live.sock;' "$R/etc/nginx/sites-available/myapp"
grep -q 'myapp@green' "$R/etc/sudoers.d/deploy-myapp"

HEALTH_URL=http://unix:/srv/myapp/live.sock:/health
