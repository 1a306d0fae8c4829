#!/usr/bin/env bash
# Build upstream ToolHive's programs from github.com/stacklok/toolhive (pinned in go.mod beside
# this script) into one cache keyed by the pins:
#   thv-operator     the operator, the benchmark peer of thv (thvtest/peer.py, benchmarks/bench_compare.py,
#                    tests/integration/test_peer.py)
#   thv-proxyrunner  the proxy runner, run from the `proxyrunner` image (devcluster/images), so
#                    ConfigMap mode can be proven with upstream's runner
#   thv              the CLI, whose `thv proxy` is the data-plane peer (benchmarks/bench_proxy.py)
# Usage: tools/toolhive/build.sh [BINARY...]
#        -> prints the path of each BINARY named (default: thv-operator), one a line, on stdout;
#           all three are built (one `go build`, one cache directory) whichever are named
# Env:   THV_CACHE_DIR (default ~/.cache/thv)
# Progress goes to stderr. Concurrent callers wait for one another (flock) and share the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLHIVE_VERSION=v0.3.11 # must match go.mod (checked below)
BINARIES=(thv-operator thv-proxyrunner thv)
# Bump when the build logic changes in a way that changes the output (the cache key does not
# hash this script, only the pins below, so editing comments or messages never forces a rebuild).
BUILD_REV=2
# go.sum is complete and authoritative (-mod=readonly), so the checksum database is never asked;
# it does not serve every module of this graph (github.com/stacklok/toolhive itself and
# golang.org/x/exp/jsonrpc2 answer 404), which matters only when go.sum is regenerated.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"
grep -q "github.com/stacklok/toolhive $TOOLHIVE_VERSION" "$here/go.mod" \
  || { echo "toolhive: go.mod does not pin github.com/stacklok/toolhive $TOOLHIVE_VERSION" >&2; exit 1; }

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(thv-operator)
for w in "${wanted[@]}"; do
  case " ${BINARIES[*]} " in
    *" $w "*) ;;
    *) echo "toolhive: unknown binary '$w' (one of: ${BINARIES[*]})" >&2; exit 2 ;;
  esac
done

# As upstream's release builds stamp them (pkg/versions, .github/ko-ci.yml); the tag's date stands
# in for the build date. BuildType=release only changes the CLI's update check, which the
# benchmarks switch off (CI=1) since this machine has no internet.
v=github.com/stacklok/toolhive/pkg/versions
LDF="-s -w -X $v.Version=$TOOLHIVE_VERSION -X $v.Commit=$TOOLHIVE_VERSION -X $v.BuildDate=2025-10-17T00:00:00Z -X $v.BuildType=release"
PKGS=()
for b in "${BINARIES[@]}"; do PKGS+=("github.com/stacklok/toolhive/cmd/$b"); done

# Cache key: what determines the output -- the Go version, the wrapper module's go.mod/go.sum,
# the packages, the linker flags (version pins), the build environment and BUILD_REV.
key_input() {
  go version
  echo "rev=$BUILD_REV toolhive=$TOOLHIVE_VERSION cgo=$CGO_ENABLED goflags=$GOFLAGS pkgs=${PKGS[*]}"
  echo "ldflags=$LDF"
  cat "$here/go.mod" "$here/go.sum"
}
build_into() {
  local t0 b
  log "building ${BINARIES[*]} of github.com/stacklok/toolhive@$TOOLHIVE_VERSION (first build ~8 min, ~1.5 GB RAM and ~2 GB of Go build cache on 2 cores; later runs reuse the cache)"
  t0=$(date +%s)
  log "[1/2] downloading modules (module tools/toolhive)"
  (cd "$here" && go mod download)
  log "[1/2] modules ready in $(( $(date +%s) - t0 ))s"
  t0=$(date +%s)
  log "[2/2] go build ${PKGS[*]}"
  (cd "$here" && go build -ldflags "$LDF" -o "$1/" "${PKGS[@]}")
  log "[2/2] built in $(( $(date +%s) - t0 ))s"
  for b in "${BINARIES[@]}"; do
    "$1/$b" --help >/dev/null 2>&1 # a binary that cannot even print its flags is no build
  done
}
# cached_build checks for and prints BIN; the last one built stands for all (one `go build`, one
# directory published at once).
NAME=toolhive BIN=thv
# shellcheck source=../lib/cached-build.sh
source "$here/../lib/cached-build.sh"
bin=$(cached_build)
bin=$(dirname "$bin")
for w in "${wanted[@]}"; do echo "$bin/$w"; done
