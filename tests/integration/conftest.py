"""Fixtures for operator integration tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kr8s
import pytest

from devcluster import ControlPlane
from thv.kube import KubeClient, connect
from thvtest.harness import install_crds, operator_kubeconfig


@pytest.fixture
async def admin_client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """thv's API client as the cluster admin (kr8s's per-process API cache cleared around it)."""
    kr8s.Api._instances.clear()
    c = await connect(str(control_plane.kubeconfig))
    yield c
    await c.api._session.aclose()
    kr8s.Api._instances.clear()


@pytest.fixture(scope="session")
def operator_kubeconfig_path(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    install_crds(control_plane)
    yield operator_kubeconfig(control_plane, tmp_path_factory.mktemp("operator"))


# the Keycloak fixtures of the proxy tests, for the operator → proxy → Keycloak chain
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))
from proxy_fixtures import (  # noqa: E402
    keycloak,
    keycloak_roundtrip,
    keycloak_upstream,
    proxy_server,
    span_exporter,
    spans,
)

__all__ = [
    "keycloak",
    "keycloak_roundtrip",
    "keycloak_upstream",
    "operator_kubeconfig_path",
    "proxy_server",
    "span_exporter",
    "spans",
]

# the reusable secret-hygiene scanner (see hygiene.py)
from hygiene import secret_scanner  # noqa: E402

__all__ += ["secret_scanner"]
