"""Every example manifest applies and reconciles, in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from devcluster import ControlPlane
from devcluster.demo import apply_examples, status_table
from thvtest.harness import run_operator, wait_for


@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
def test_examples_reconcile(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path, use_configmap: bool
) -> None:
    with run_operator(operator_kubeconfig_path, namespaces=[namespace], use_configmap=use_configmap):
        created = apply_examples(control_plane, namespace)
        assert {k for k, _ in created} >= {"MCPServer", "MCPToolConfig", "MCPExternalAuthConfig", "Secret"}
        wait_for(lambda: status_table(control_plane, namespace)[1], 120, "all examples reconciled")
