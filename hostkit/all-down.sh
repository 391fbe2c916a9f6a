#!/usr/bin/env bash
# Tears down every test host of this kit (also leftovers of a crashed run):
# hosts with state directories, stray zdd-* namespaces, zv* veths, zdd-*
# overlay mounts and cgroups; then the bridge.
set -uo pipefail
# shellcheck source=hostkit/lib.sh
. "$(dirname "$0")/lib.sh"
names=$( { ls "$STATE_ROOT" 2>/dev/null
           ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^zdd-//p'
           for root in $(cgroup_roots); do ls "$root/zdd-hostkit" 2>/dev/null; done
         } | grep -v '^\.' | sort -u)
for name in $names; do "$KIT/host-down.sh" "$name" & done
wait
# Anything still left: overlay mounts named zdd-*, veths zv*, the bridge.
awk '$1 ~ /^zdd-/ {print $2}' /proc/mounts | while read -r m; do umount -l "$m" 2>/dev/null; done
ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^zv[0-9]+$' | while read -r v; do ip link del "$v" 2>/dev/null; done
ip link del "$BRIDGE" 2>/dev/null
for root in $(cgroup_roots); do rmdir "$root/zdd-hostkit" 2>/dev/null; done
exit 0
