#!/usr/bin/env bash
# The main job: the local cluster with a real node, Keycloak, the operator in-cluster (Helm),
# the examples, and one MCP tool call through a runner with an exchanged token. Ctrl-C stops
# everything. Needs root (the real node: containerd, kubelet, iptables).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh --demo
export THV_CHECKOUT="$PWD"
exec .venv/bin/python -m devcluster.demo "$@"
