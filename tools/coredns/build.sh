#!/usr/bin/env bash
# Build CoreDNS (github.com/coredns/coredns, pinned in go.mod beside this script) into a cache
# keyed by the pins: the local cluster's DNS (*.svc.cluster.local), run from the `coredns` image
# (devcluster/images.py).
# Usage: tools/coredns/build.sh            -> prints the coredns binary's path on stdout's last line
# Env:   THV_CACHE_DIR (default ~/.cache/thv)
# Progress goes to stderr. Concurrent callers wait for one another (flock) and share the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COREDNS_VERSION=v1.15.0 # must match go.mod (checked below)
PKG=github.com/coredns/coredns
# Bump when the build logic changes in a way that changes the output (the cache key does not
# hash this script, only the pins below, so editing comments or messages never forces a rebuild).
BUILD_REV=1
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
grep -q "github.com/coredns/coredns $COREDNS_VERSION" "$here/go.mod" \
  || { echo "coredns: go.mod does not pin github.com/coredns/coredns $COREDNS_VERSION" >&2; exit 1; }

# As upstream's Makefile does (-s -w, GitCommit stamped); the module zip carries no git commit,
# so the version tag stands in for it.
LDF="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"

# Cache key: what determines the output -- the Go version, the wrapper module's go.mod/go.sum,
# the package, the linker flags, the build environment and BUILD_REV.
key_input() {
  go version
  echo "rev=$BUILD_REV coredns=$COREDNS_VERSION cgo=$CGO_ENABLED goflags=$GOFLAGS pkg=$PKG"
  echo "ldflags=$LDF"
  cat "$here/go.mod" "$here/go.sum"
}
build_into() {
  local t0
  log "building $PKG@$COREDNS_VERSION (first build ~4-7 min and ~1 GB of Go build cache on 2 cores; later runs reuse the cache)"
  t0=$(date +%s)
  log "[1/2] downloading modules (module tools/coredns)"
  (cd "$here" && go mod download)
  log "[1/2] modules ready in $(( $(date +%s) - t0 ))s"
  t0=$(date +%s)
  log "[2/2] go build $PKG"
  (cd "$here" && go build -ldflags "$LDF" -o "$1/coredns" "$PKG")
  log "[2/2] coredns built in $(( $(date +%s) - t0 ))s"
  "$1/coredns" -version >/dev/null # a binary that cannot even print its version is no build
}
NAME=coredns BIN=coredns
# shellcheck source=../lib/cached-build.sh
source "$here/../lib/cached-build.sh"
cached_build
