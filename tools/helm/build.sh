#!/usr/bin/env bash
# Build Helm (helm.sh/helm/v3/cmd/helm) from its pinned Go module into a cache keyed by the pins.
# Usage: tools/helm/build.sh            -> prints the helm binary's path on stdout's last line
# Env:   THV_CACHE_DIR (default ~/.cache/thv)
# Progress goes to stderr. Concurrent callers wait for one another (flock) and share the result.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION=v3.22.0
# Helm's Makefile stamps the Kubernetes version its client-go corresponds to (client-go v0.37.x ->
# 1.37); without it `helm template`/`helm lint` assume Kubernetes v1.20, older than the chart's
# kubeVersion. Derived from the k8s.io/client-go pin in go.mod, as the Makefile does.
client_go=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/go.mod")
[[ $client_go =~ ^v0\.([0-9]+)\. ]] || { echo "helm: no k8s.io/client-go v0.x pin in $here/go.mod" >&2; exit 1; }
K8S_MAJOR=1
K8S_MINOR=${BASH_REMATCH[1]}
# Bump when the build logic changes in a way that changes the output (the cache key does not
# hash this script, only the pins below, so editing comments or messages never forces a rebuild).
BUILD_REV=1
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly"

# As upstream's Makefile does for a tagged release (metadata empty, tree clean). The module zip
# carries no git commit, so version.gitCommit stays empty.
v=helm.sh/helm/v3/internal/version
LDF="-s -w -X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  LDF+=" -X $p.k8sVersionMajor=$K8S_MAJOR -X $p.k8sVersionMinor=$K8S_MINOR"
done

# Cache key: what determines the output -- the Go version, the wrapper module's go.mod/go.sum,
# the linker flags (version pins), the build environment and BUILD_REV.
key_input() {
  go version
  echo "rev=$BUILD_REV helm=$HELM_VERSION cgo=$CGO_ENABLED goflags=$GOFLAGS"
  echo "ldflags=$LDF"
  cat "$here/go.mod" "$here/go.sum"
}
build_into() {
  log "building helm $HELM_VERSION (first build ~3 min and ~0.7 GB of Go build cache on 2 cores; later runs reuse the cache)"
  (cd "$here" && go build -ldflags "$LDF" -o "$1/helm" helm.sh/helm/v3/cmd/helm)
  "$1/helm" version --short >/dev/null # a binary that cannot even print its version is no build
}
NAME=helm BIN=helm
# shellcheck source=../lib/cached-build.sh
source "$here/../lib/cached-build.sh"
cached_build
