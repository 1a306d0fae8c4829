#!/usr/bin/env bash
# Build the floor writer (main.go beside this script: replays recorded API writes over one
# HTTP/2 connection with client-go's transport; benchmarks/bench_compare.py's "floor" column)
# into a cache keyed by its source and pins.
# Usage: tools/floorwriter/build.sh   -> prints the floorwriter binary's path on stdout's last line
# Env:   THV_CACHE_DIR (default ~/.cache/thv)
# Progress goes to stderr. Concurrent callers wait for one another (flock) and share the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Bump when the build logic changes in a way that changes the output.
BUILD_REV=1
# go.sum is complete and authoritative (-mod=readonly), so the checksum database is never asked.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
LDF="-s -w"

# Cache key: the Go version, go.mod/go.sum, the source, the flags and BUILD_REV.
key_input() {
  go version
  echo "rev=$BUILD_REV cgo=$CGO_ENABLED goflags=$GOFLAGS ldflags=$LDF"
  cat "$here/go.mod" "$here/go.sum" "$here/main.go"
}
build_into() {
  local t0
  log "building floorwriter (client-go v0.37.1; first build ~1-3 min on 2 cores, later runs reuse the cache)"
  t0=$(date +%s)
  log "[1/2] downloading modules (module tools/floorwriter)"
  (cd "$here" && go mod download)
  log "[1/2] modules ready in $(( $(date +%s) - t0 ))s"
  t0=$(date +%s)
  log "[2/2] go build"
  (cd "$here" && go build -ldflags "$LDF" -o "$1/floorwriter" .)
  log "[2/2] floorwriter built in $(( $(date +%s) - t0 ))s"
  "$1/floorwriter" -h >/dev/null 2>&1 || [ $? -eq 2 ] # flag's usage exits 2
}
NAME=floorwriter BIN=floorwriter
# shellcheck source=../lib/cached-build.sh
source "$here/../lib/cached-build.sh"
cached_build
