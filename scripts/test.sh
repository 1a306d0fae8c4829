#!/usr/bin/env bash
# The whole test suite: lint, types, unit tests, and integration tests against the real
# local control plane (and a real Keycloak), all installed and started by the project.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh --keycloak
echo "[test] ruff" >&2
.venv/bin/ruff check src bus devcluster thvtest tests benchmarks tools
.venv/bin/ruff format --check src bus devcluster thvtest tests benchmarks tools >/dev/null
echo "[test] mypy --strict" >&2
.venv/bin/mypy
for tests_with_own_conftest in tests/conftest.py tests/runner tests/middleware tests/proxy; do
  .venv/bin/mypy "$tests_with_own_conftest"
done
echo "[test] import contracts" >&2
.venv/bin/lint-imports >/dev/null
echo "[test] pytest" >&2
set +e
.venv/bin/pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "[test] no tests ran: failing" >&2; exit 1; fi
exit "$rc"
