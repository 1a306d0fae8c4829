"""Fixtures for operator integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import install_crds, operator_kubeconfig

from thv.devcluster import ControlPlane


@pytest.fixture(scope="session")
def operator_kubeconfig_path(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    install_crds(control_plane)
    yield operator_kubeconfig(control_plane, tmp_path_factory.mktemp("operator"))
