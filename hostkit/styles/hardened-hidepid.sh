# shellcheck shell=bash disable=SC2034  # sets what host-up.sh reads back
# Style hardened-hidepid: the kit's server on a host hardened the way security
# benchmarks recommend, /proc mounted with hidepid=invisible (hidepid=2 before Linux
# 5.8) through /etc/fstab: a user sees only its own processes, so the deploy user
# cannot see www-data's Gunicorn master and workers (ps, /proc/PID), while root (sudo)
# still sees them all. systemd applies the fstab options to the API file system /proc
# at boot (systemd-remount-fs), also inside the container; the tests check that it did.
cat >>"$R/etc/fstab" <<'FSTAB'
proc /proc proc defaults,nosuid,nodev,noexec,hidepid=invisible 0 0
FSTAB
