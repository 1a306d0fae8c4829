"""``thv-runner``: executes what the operator renders, in both modes, inside the proxy pod.

* :mod:`thv.runner.config` — the one typed configuration (:class:`RunnerConfig`) and its two
  sources (flags, ``runconfig.json``), shared with ``thv proxy``;
* :mod:`thv.runner.workload` — pure: configuration → the MCP server's StatefulSet and headless
  Service (upstream's names and labels, ``--k8s-pod-patch`` as a strategic merge);
* :mod:`thv.runner.cli` — ``thv-runner run [flags] IMAGE [-- ARGS...]`` and ``--dry-run``.
"""

from thv.runner.config import ConfigError, Invocation, Middleware, RunnerConfig, Workload, runner_config

__all__ = ["ConfigError", "Invocation", "Middleware", "RunnerConfig", "Workload", "runner_config"]
