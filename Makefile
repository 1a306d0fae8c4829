# Convenience targets; the README's two commands (scripts/run.sh, scripts/test.sh) need no make.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.PHONY: run test soak bench generate

run:
	scripts/run.sh

test:
	scripts/test.sh

# The fault-injection suite with 20 trials per fault (apiserver restart + 410, SIGKILL,
# concurrent writers, half-reconciled start): ~40 min on 2 cores. The test command runs 2.
soak:
	scripts/bootstrap.sh
	THV_FAULT_TRIALS=$${THV_FAULT_TRIALS:-20} .venv/bin/pytest -p no:cacheprovider -q -s tests/integration/test_faults.py 2>&1 | grep -v '^\[devcluster\]' | tee benchmarks/results/soak.txt

generate:
	scripts/generate.sh
