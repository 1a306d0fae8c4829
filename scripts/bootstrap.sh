#!/usr/bin/env bash
# Install everything thv's run and test commands need, reusing caches:
#   - a Python venv in .venv with thv, bus and the dev tools (pip cache: ~/.cache/pip)
#   - the local Kubernetes control plane built from Go modules (~/.cache/thv/controlplane)
#   - with --demo (the run command): Helm, the real node and its images, Keycloak (below)
#   - with --keycloak (the test command) or --all: Helm, Jaeger and the upstream ToolHive operator
#     built from their Go modules (~/.cache/thv/{helm,jaeger,toolhive}), a JDK >= 21 check and Keycloak from Maven
#     Central (~/.cache/thv/keycloak); and the real node: Debian's containerd, runc, CNI plugins,
#     iptables and image tools (tools/node/packages.sh), kubelet + kube-proxy from the Kubernetes
#     module (~/.cache/thv/node) and the locally built images (~/.cache/thv/images)
# Idempotent: a second run takes seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf '[bootstrap %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.thv-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating the Python environment (.venv) with $($PY --version)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
  say "Python environment ready"
else
  say "Python environment up to date"
fi

say "control plane binaries (first build ~7 min on 2 cores, then cached)"
tools/controlplane/build.sh >/dev/null
wanted() { local w; for w in "$@"; do [ "$MODE" = "$w" ] && return 0; done; return 1; }
MODE=${1:-}
if wanted --keycloak --all --demo; then
  say "Helm v3.22.0 from its Go module (first build ~3 min, then cached)"
  tools/helm/build.sh >/dev/null
fi
if wanted --keycloak --all; then
  say "Jaeger v1.76.0 (v2.13.0) from its Go module (first build ~6 min, then cached)"
  tools/jaeger/build.sh >/dev/null
  say "upstream ToolHive v0.3.11 (operator, proxy runner, thv CLI: the benchmark peers) from its Go module (first build ~8 min, then cached)"
  tools/toolhive/build.sh thv-operator thv-proxyrunner thv >/dev/null
fi

if wanted --keycloak --all --node --demo; then
  say "real node: Debian packages (containerd, runc, CNI plugins, iptables, umoci, mmdebstrap; ~20 s once)"
  tools/node/packages.sh
  say "kubelet + kube-proxy v1.36.3 from the Kubernetes module (first build ~6 min, then cached)"
  tools/node/build.sh >/dev/null
  say "images built locally: pause, CoreDNS, thv, demo MCP server, upstream proxyrunner (first build ~10 min, then cached)"
  THV_CHECKOUT="$PWD" .venv/bin/python -m devcluster.images build --all >/dev/null
fi

if wanted --keycloak --all --demo && [ -x tools/keycloak/fetch.sh ]; then
  say "Keycloak (first download ~200 MB from Maven Central, then cached)"
  tools/keycloak/fetch.sh >/dev/null
fi
say "done"
