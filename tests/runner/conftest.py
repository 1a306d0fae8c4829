"""Fixtures for the runner's real-pod tests (``test_runner_pods.py``); the unit tests here need none.

* ``pod_keycloak`` (session): a Keycloak of its own listening on ``real_cluster.node.host_ip``, so
  the runner pod (token endpoint), the demo MCP server pod (JWKS) and the test process (user
  tokens) all use one URL and the tokens' ``iss`` agrees everywhere;
* ``pod_images`` (session): the ``thv`` (runner), ``demo-mcp`` and upstream ``proxyrunner`` images
  imported into the real node, by name → ref (built by ``devcluster.images``, cached);
* ``real_operator_kubeconfig`` (session): CRDs installed in the real-node cluster and the
  operator's ServiceAccount bound to the generated ClusterRole (``operator_harness``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import ControlPlane

_TESTS = Path(__file__).resolve().parents[1]
for _sub in ("integration", "proxy"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))

from proxy_testlib import KeycloakServer, find_jdk, install_keycloak, set_progress_context  # noqa: E402


@pytest.fixture(scope="session")
def pod_keycloak(
    real_cluster: ControlPlane, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeycloakServer]:
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        set_progress_context(capman.global_and_fixture_disabled)
    node = real_cluster.node
    assert node is not None, "real_cluster has no real node"
    server = KeycloakServer(
        install_keycloak(),
        find_jdk(21),
        tmp_path_factory.mktemp("pod-keycloak") / "keycloak.log",
        http_host=node.host_ip,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pod_images(real_cluster: ControlPlane) -> dict[str, str]:
    node = real_cluster.node
    assert node is not None, "real_cluster has no real node"
    return {name: node.load(name) for name in ("thv", "demo-mcp")}


@pytest.fixture(scope="session")
def real_operator_kubeconfig(real_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from operator_harness import install_crds, operator_kubeconfig  # the operator: only for pod tests

    install_crds(real_cluster)
    return operator_kubeconfig(real_cluster, tmp_path_factory.mktemp("real-operator"))
