#!/usr/bin/env bash
# The main job: a local control plane, thv's CRDs, the operator, the examples applied,
# and their status shown. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
export THV_CHECKOUT="$PWD"
exec .venv/bin/python -m devcluster.demo "$@"
