#!/usr/bin/env bash
# Tears one test host down completely: processes, overlay mount, veth,
# network namespace, cgroups, state. Safe to run on a half-started or absent host.
#   hostkit/host-down.sh NAME
set -uo pipefail
# shellcheck source=hostkit/lib.sh
. "$(dirname "$0")/lib.sh"
NAME=${1:?usage: host-down.sh NAME}
S=$STATE_ROOT/$NAME

# 1. processes: ask nspawn to power off (only if the PID is still our nspawn),
#    then SIGKILL everything left in the host's cgroup subtree.
pid=$(cat "$S/nspawn.pid" 2>/dev/null || true)
if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "systemd-nspawn.*--machine=$NAME "; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
for _ in 1 2 3 4 5 6 7 8 9 10; do
  pids=$(for root in $(cgroup_roots); do
    [ -d "$root/zdd-hostkit/$NAME" ] && find "$root/zdd-hostkit/$NAME" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u)
  [ -n "$pids" ] || break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 0.1
done

# 2. mounts, network, cgroups, state
if mountpoint -q "$S/root" 2>/dev/null; then umount "$S/root" 2>/dev/null || umount -l "$S/root"; fi
idx=$(cat "$S/index" 2>/dev/null || true)
[ -n "$idx" ] && ip link del "zv$idx" 2>/dev/null
# The next host with this IP has another MAC: drop the neighbour entry now.
[ -n "$idx" ] && { ip neigh flush to "10.231.0.$((10 + idx))" dev "$BRIDGE" 2>/dev/null || true; }
ip netns del "zdd-$NAME" 2>/dev/null
for root in $(cgroup_roots); do
  [ -d "$root/zdd-hostkit/$NAME" ] && find "$root/zdd-hostkit/$NAME" -depth -type d -exec rmdir {} \; 2>/dev/null
done
rm -rf "/run/systemd/nspawn/propagate/$NAME"
rm -rf "$S"
exit 0
