"""Shared fixtures: the real local control plane (started once per session when needed),
a typed API client per test, and a fresh namespace per test."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from thv.devcluster import ControlPlane


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One real control plane for the whole session (etcd, apiserver, kcm, scheduler, kwok)."""
    cp = ControlPlane().start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[object]:
    """A :class:`thv.kube.KubeClient` authenticated as the cluster admin."""
    import kr8s

    from thv.kube import connect

    kr8s.Api._instances.clear()
    client = await connect(str(control_plane.kubeconfig))
    try:
        yield client
    finally:
        session = getattr(client.api, "_session", None)
        if session is not None:
            await session.aclose()
        kr8s.Api._instances.clear()


def _wait(pred: object, timeout: float = 30.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl_json("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    def has_sa() -> bool:
        try:
            control_plane.kubectl_json("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return True
        except Exception:
            return False

    _wait(has_sa)
    yield name
    with contextlib.suppress(Exception):
        control_plane.kubectl_json("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
