"""Shared fixtures.

- ``anyio_backend`` (session): asyncio, for ``@pytest.mark.anyio`` tests and async fixtures.
- ``control_plane`` (session, sync): one real local control plane per test session, started
  only when a test requests it (build progress and start-up lines go to the terminal).
- ``kube``: a kr8s async API authenticated as the cluster admin (per test, ``timeout`` set).
- ``namespace``: a fresh namespace with its ``default`` ServiceAccount, deleted afterwards.
- ``real_cluster`` (session, sync): a second local cluster with a **real node** (containerd,
  kubelet, kube-proxy, CoreDNS; :mod:`devcluster.node`), where pods run from locally built
  images (``real_cluster.node.load("demo-mcp")`` imports one and returns its ref);
  ``real_namespace`` is ``namespace`` for it. One real node per machine: a second test session
  waits for the first one's node to stop.

Tests under ``tests/integration/`` and every test that uses ``control_plane`` (directly or
through ``kube``/``namespace``) are marked ``integration``; ``-m "not integration"`` runs
the unit tests without starting anything.
"""

from __future__ import annotations

import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kr8s
import kr8s.asyncio
import pytest

from devcluster import ControlPlane
from thvtest.capture import uncaptured

_INTEGRATION_DIR = Path(__file__).parent / "integration"


_RUN_FIRST = Path(__file__).parent / "node" / "test_node_lifecycle.py"
"""Starts and stops real nodes of its own: it must run before any test opens ``real_cluster``
(one real node per machine, and that fixture lives for the whole session)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path != _RUN_FIRST)  # stable: the rest keep their order
    for item in items:
        in_dir = _INTEGRATION_DIR in item.path.parents
        names = getattr(item, "fixturenames", ())
        if in_dir or "control_plane" in names or "real_cluster" in names:
            item.add_marker(pytest.mark.integration)
        if "real_cluster" in names or item.path == _RUN_FIRST:
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """The real control plane (etcd, kube-apiserver, kcm, scheduler, kwok, one Ready node)."""
    with uncaptured(request):
        cp = ControlPlane().start()
    try:
        yield cp
    finally:
        with uncaptured(request):
            cp.stop()


@pytest.fixture(scope="session")
def real_cluster(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A local cluster with a real node (and the fake node, tainted); stopped at session end,
    leaving nothing on the host."""
    with uncaptured(request):
        cp = ControlPlane(node="real").start()
    try:
        yield cp
    finally:
        with uncaptured(request):
            cp.stop()


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[Any]:
    """``kr8s.asyncio.Api`` for the admin kubeconfig, with a 30 s request timeout."""
    kr8s.Api._instances.clear()  # cached per thread and event loop; each test has a new loop
    with warnings.catch_warnings():
        # kr8s 0.20 warns that it was tested up to Kubernetes 1.35 (the cluster is 1.36)
        warnings.filterwarnings("ignore", message="Kubernetes version", category=UserWarning)
        api = await kr8s.asyncio.api(kubeconfig=str(control_plane.kubeconfig))
    api.timeout = 30
    try:
        yield api
    finally:
        session = getattr(api, "_session", None)
        if session is not None:
            await session.aclose()
        kr8s.Api._instances.clear()


def _dns_label(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, with its ``default`` ServiceAccount (needed
    before Pods can be admitted); deleted (without waiting) afterwards."""
    yield from _fresh_namespace(control_plane, request)


@pytest.fixture
def real_namespace(real_cluster: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """``namespace`` in the real-node cluster."""
    yield from _fresh_namespace(real_cluster, request)


def _fresh_namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{_dns_label(request.node.name, 40)}-{uuid.uuid4().hex[:6]}"
    status, body = control_plane.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    deadline = time.monotonic() + 30
    sa = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    while control_plane.api_request("GET", sa)[0] != 200:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 30s"
        time.sleep(0.1)
    yield name
    for attempt in range(10):  # the apiserver may still be settling after a fault-injection test
        try:
            control_plane.api_request("DELETE", f"/api/v1/namespaces/{name}")
            break
        except OSError:
            time.sleep(0.5 * (attempt + 1))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
