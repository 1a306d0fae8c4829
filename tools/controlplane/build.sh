#!/usr/bin/env bash
# Build the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from pinned Go modules into a cache keyed by the pins.
# Usage: tools/controlplane/build.sh            -> prints the bin directory on stdout's last line
# Env:   THV_CACHE_DIR (default ~/.cache/thv)
# Progress goes to stderr. Concurrent callers wait for one another (flock) and share the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=v1.36.3
# Bump when the build logic changes in a way that changes the output (the cache key does not
# hash this script, only the pins below, so editing comments or messages never forces a rebuild).
BUILD_REV=1
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
stages=(node/fast/node-initialize.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)

stamp() { # $1 = package prefix of version vars
  local p=$1 minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  printf -- "-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitCommit=0000000000000000000000000000000000000000 -X %s.gitTreeState=clean -X %s.buildDate=2026-01-01T00:00:00Z " \
    "$p" "$K8S_VERSION" "$p" "$p" "$minor" "$p" "$p" "$p"
}
LDF="-s -w $(stamp k8s.io/component-base/version)$(stamp k8s.io/client-go/pkg/version)"

# Cache key: what determines the output -- the Go version, the wrapper modules' go.mod/go.sum,
# the linker flags (version pins), the build environment, the stage files and BUILD_REV.
key=$( {
  go version
  echo "rev=$BUILD_REV k8s=$K8S_VERSION cgo=$CGO_ENABLED goflags=$GOFLAGS"
  echo "ldflags=$LDF"
  echo "stages=${stages[*]}"
  for d in etcd k8s kwok; do echo "== $d"; cat "$here/$d/go.mod" "$here/$d/go.sum"; done
} | sha256sum | cut -c1-16)
root="${THV_CACHE_DIR:-$HOME/.cache/thv}/controlplane"
cache="$root/$key"
bin="$cache/bin"

have_all() {
  local b f
  for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done
  for f in "${stages[@]}"; do [ -s "$bin/kwok-stages/$(basename "$f")" ] || return 1; done
}
if have_all; then
  echo "controlplane: cached binaries in $bin" >&2
  echo "$bin"; exit 0
fi

log() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mkdir -p "$root"
exec 9>"$root/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it (lock $root/.build.lock)"
  flock 9
fi
if have_all; then # built by the process we waited for
  echo "controlplane: cached binaries in $bin" >&2
  echo "$bin"; exit 0
fi

mkdir -p "$bin.partial"
start=$(date +%s)
log "building into $cache (cold builds take ~7 min and ~2 GB RAM on 2 cores; later runs reuse the cache)"

step=0; total=4
build() { # $1 = what, $2 = module dir, rest = go build args
  local what=$1 dir=$2 t0; shift 2; step=$((step+1))
  log "[$step/$total] building $what (module tools/controlplane/$dir)"
  t0=$(date +%s)
  (cd "$here/$dir" && go build "$@")
  log "[$step/$total] $what done in $(( $(date +%s) - t0 ))s"
}
build etcd etcd -ldflags "-s -w" -o "$bin.partial/etcd" go.etcd.io/etcd/server/v3
build kwok kwok -ldflags "-s -w" -o "$bin.partial/kwok" sigs.k8s.io/kwok/cmd/kwok
build kube-apiserver k8s -ldflags "$LDF" -o "$bin.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
build "kube-controller-manager + kube-scheduler" k8s -ldflags "$LDF" -o "$bin.partial/" k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler

# kwok v0.8.0 has no built-in stages: ship the upstream stage files from the module cache.
kwokdir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
mkdir -p "$bin.partial/kwok-stages"
for f in "${stages[@]}"; do
  cp "$kwokdir/kustomize/stage/$f" "$bin.partial/kwok-stages/$(basename "$f")"
done
chmod -R u+w "$bin.partial"
rm -rf "$bin"; mv "$bin.partial" "$bin"
log "all binaries built in $(( $(date +%s) - start ))s into $bin ($(du -sh "$bin" | cut -f1))"
echo "$bin"
