# Shared by the hostkit scripts (sourced, not run).
# shellcheck shell=bash
KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$KIT")
CACHE=${ZDD_CACHE:-/var/cache/zdd-hostkit}
STATE_ROOT=${ZDD_STATE:-/var/lib/zdd-hostkit/hosts}
BRIDGE=zdd-br0
BRIDGE_IP=10.231.0.1
CG_ROOTS=(/sys/fs/cgroup/systemd /sys/fs/cgroup/unified)

# Debian releases a host can run: bookworm (12), trixie (13) or sid (unstable).
check_suite() {
  case "$1" in bookworm | trixie | sid) ;; *) die "--suite must be bookworm, trixie or sid (got '$1')" ;; esac
}

log() { echo "hostkit: $*" >&2; }
die() { echo "hostkit: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (containers, network namespaces and mounts need it)"

# Installs the outer machine's prerequisites when a command is missing.
ensure_host_packages() {
  local missing=() pair
  for pair in mmdebstrap:mmdebstrap zstd:zstd systemd-nspawn:systemd-container ip:iproute2 \
              ssh:openssh-client ssh-keygen:openssh-client curl:curl flock:util-linux nsenter:util-linux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The cgroup roots this machine has (hybrid: name=systemd + unified; pure v2: the root).
cgroup_roots() {
  local r
  if [ -d /sys/fs/cgroup/systemd ] || [ -d /sys/fs/cgroup/unified ]; then
    for r in "${CG_ROOTS[@]}"; do [ -d "$r" ] && echo "$r"; done
  else
    echo /sys/fs/cgroup
  fi
}

# curl from this machine to a host's Nginx: the URL's name resolves to the host's IP
# (as DNS would for a virtual host) and https is verified against CA (the host's
# certificate) when given.   curl_host URL IP CA [CURL-OPTIONS...]
curl_host() {
  local url=$1 ip=$2 ca=$3
  shift 3
  [[ $url =~ ^(https?)://([^/:]+)(:([0-9]+))?(/.*)?$ ]] || die "not an http(s) URL: $url"
  local scheme=${BASH_REMATCH[1]} name=${BASH_REMATCH[2]} port=${BASH_REMATCH[4]}
  [ -n "$port" ] || if [ "$scheme" = https ]; then port=443; else port=80; fi
  local args=(--resolve "$name:$port:$ip")
  [ -z "$ca" ] || args+=(--cacert "$ca")
  curl "${args[@]}" "$@" "$url"
}
