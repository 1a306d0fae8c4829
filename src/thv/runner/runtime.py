"""The runner's Kubernetes runtime (in the proxy pod)."""

from __future__ import annotations

import sys

from thv.runner.config import Invocation, RunnerConfig


def main_run(config: RunnerConfig, invocation: Invocation, namespace: str) -> int:
    """Apply the workload and serve the data plane until SIGINT/SIGTERM."""
    print("thv-runner: error: the Kubernetes runtime is not implemented yet (use --dry-run)", file=sys.stderr)
    return 1
