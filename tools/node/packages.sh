#!/usr/bin/env bash
# Debian packages the real node and the image builder need: containerd, runc, the CNI plugins,
# iptables and conntrack, the image tools (umoci, mmdebstrap, buildah) and a C compiler (pause).
# Idempotent: returns in well under a second when everything is installed.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins iptables conntrack umoci mmdebstrap buildah gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
say() { printf '[node-packages %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [ "$(id -u)" != 0 ]; then
  say "missing Debian packages: ${missing[*]}; the real node needs root to install and run them"
  exit 1
fi
say "installing ${missing[*]} from Debian (about 20 s)"
export DEBIAN_FRONTEND=noninteractive
# the packages' services are started by thv, never by the package manager
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1
fi
apt-get update -q >/dev/null || { say "apt-get update failed"; exit 1; }
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || { say "apt-get install ${missing[*]} failed"; exit 1; }
[ -n "${created_policy:-}" ] && rm -f /usr/sbin/policy-rc.d
say "installed"
