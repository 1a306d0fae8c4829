#!/usr/bin/env bash
# Build upstream ToolHive's proxy runner (github.com/stacklok/toolhive/cmd/thv-proxyrunner, pinned
# in go.mod beside this script at v0.3.11, the benchmark peer's version in tools/toolhive, with the
# same versions of every module the two share) into a cache keyed by the pins; it runs from the
# `proxyrunner` image (devcluster/images.py), so ConfigMap mode can be proven with upstream's runner.
# Usage: tools/proxyrunner/build.sh      -> prints the thv-proxyrunner binary's path on stdout's last line
# Env:   THV_CACHE_DIR (default ~/.cache/thv)
# Progress goes to stderr. Concurrent callers wait for one another (flock) and share the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module="$here"
TOOLHIVE_VERSION=v0.3.11 # must match go.mod (checked below)
PKG=github.com/stacklok/toolhive/cmd/thv-proxyrunner
# Bump when the build logic changes in a way that changes the output (the cache key does not
# hash this script, only the pins below, so editing comments or messages never forces a rebuild).
BUILD_REV=1
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
grep -q "github.com/stacklok/toolhive $TOOLHIVE_VERSION" "$module/go.mod" \
  || { echo "proxyrunner: go.mod does not pin github.com/stacklok/toolhive $TOOLHIVE_VERSION" >&2; exit 1; }

# As upstream's release image build stamps them (.github/ko-ci.yml); the tag's date stands in for
# the build date, as in tools/toolhive/build.sh.
v=github.com/stacklok/toolhive/pkg/versions
LDF="-s -w -X $v.Version=$TOOLHIVE_VERSION -X $v.Commit=$TOOLHIVE_VERSION -X $v.BuildDate=2025-10-17T00:00:00Z -X $v.BuildType=release"

# Cache key: the Go version, the wrapper module's go.mod/go.sum, the package, the linker flags, the
# build environment and BUILD_REV.
key_input() {
  go version
  echo "rev=$BUILD_REV toolhive=$TOOLHIVE_VERSION cgo=$CGO_ENABLED goflags=$GOFLAGS pkg=$PKG"
  echo "ldflags=$LDF"
  cat "$module/go.mod" "$module/go.sum"
}
build_into() {
  local t0
  log "building $PKG@$TOOLHIVE_VERSION (first build ~5 min and ~1 GB of Go build cache on 2 cores; later runs reuse the cache)"
  t0=$(date +%s)
  log "[1/2] downloading modules (module tools/proxyrunner)"
  (cd "$module" && go mod download)
  log "[1/2] modules ready in $(( $(date +%s) - t0 ))s"
  t0=$(date +%s)
  log "[2/2] go build $PKG"
  (cd "$module" && go build -ldflags "$LDF" -o "$1/thv-proxyrunner" "$PKG")
  log "[2/2] thv-proxyrunner built in $(( $(date +%s) - t0 ))s"
  "$1/thv-proxyrunner" --help >/dev/null 2>&1 # a binary that cannot even print its flags is no build
}
NAME=proxyrunner BIN=thv-proxyrunner
# shellcheck source=../lib/cached-build.sh
source "$here/../lib/cached-build.sh"
cached_build
