"""What the runner does with the API, declared once (like the operator's ClusterRole).

The runner runs as ``<name>-proxy-runner`` bound to the Role the operator renders
(:data:`thv.render.rbac.PROXY_RUNNER_RULES`); ``tests/runner/test_runner_rbac.py`` checks that
Role grants every need here, and ``test_runner_runtime.py`` runs the runner under it.
"""

from __future__ import annotations

from typing import Final

from thv.rbac import READ, Need

__all__ = ["RUNNER_NEEDS"]

RUNNER_NEEDS: Final[tuple[Need, ...]] = (
    Need("apps", ("statefulsets",), (*READ, "patch"), "server-side apply of the MCP server, watch for drift"),
    Need("", ("services",), (*READ, "patch"), "server-side apply of the headless Service, watch for drift"),
    Need("", ("pods",), ("list",), "find the running MCP server pod to attach to"),
    Need("", ("pods/attach",), ("get",), "stdio over WebSocket (a GET upgrade)"),
)
