"""The runner's workload loop on the real control plane, as the proxy runner's ServiceAccount bound
only to the Role the operator renders: server-side apply of the StatefulSet and headless
Service, drift repair (a tampered image, a deleted Service), and the Role covering every call.
(Pods on the fake node do not run containers: stdio attach is tested in real pods,
``test_runner_pods.py``, and against a subprocess, ``test_bridge.py``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import kr8s
import msgspec
import pytest

from devcluster import ControlPlane
from thv.api.crds import MCPServer
from thv.kube import connect
from thv.render.desired import render
from thv.render.settings import OperatorSettings
from thv.runner.config import runner_config
from thv.runner.runtime import WorkloadApplier, service_account_owner
from thv.runner.workload import FIELD_MANAGER
from thvtest import objects
from thvtest.harness import token_kubeconfig

pytestmark = pytest.mark.anyio


def _server(namespace: str) -> MCPServer:
    return objects.server(
        "image: example/mcp:1\ntransport: streamable-http\nmcpPort: 9000\nargs: [--verbose]",
        name="web",
        namespace=namespace,
        metadata={"uid": "00000000-0000-0000-0000-000000000001"},
    )


def _runner_identity(cp: ControlPlane, namespace: str, tmp_path: Path) -> tuple[Path, str]:
    """The rendered SA, Role and RoleBinding (owner references dropped: no MCPServer object here),
    then a TokenRequest token for that SA."""
    d = render(_server(namespace), OperatorSettings())
    for obj, path in (
        (d.proxy_runner_service_account, f"/api/v1/namespaces/{namespace}/serviceaccounts"),
        (d.proxy_runner_role, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles"),
        (
            d.proxy_runner_role_binding,
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        ),
    ):
        body = msgspec.to_builtins(obj)
        body["metadata"].pop("ownerReferences", None)
        status, answer = cp.api_request("POST", path, body)
        assert status == 201, answer
    return token_kubeconfig(cp, namespace, "web-proxy-runner", tmp_path / "runner.kubeconfig", seconds=3600)


def _get(cp: ControlPlane, path: str) -> tuple[int, Any]:
    return cp.api_request("GET", path)


async def test_apply_and_repair_drift_as_the_proxy_runner(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubeconfig, token = _runner_identity(control_plane, namespace, tmp_path)
    owner = service_account_owner(token)  # what the runner reads from its token file in the pod
    assert owner is not None and owner["name"] == "web-proxy-runner"
    d = render(_server(namespace), OperatorSettings())
    argv = list(d.args[1:])
    _, config = runner_config(argv, env={}, runconfig_paths=())
    kr8s.Api._instances.clear()
    client = await connect(str(kubeconfig))
    applier = WorkloadApplier(client, config, namespace, owner)
    sts_path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/web"
    svc_path = f"/api/v1/namespaces/{namespace}/services/mcp-web-headless"
    async with anyio.create_task_group() as tg:
        tg.start_soon(applier.run)
        with anyio.fail_after(30):
            while _get(control_plane, svc_path)[0] != 200:
                await anyio.sleep(0.2)
        status, sts = _get(control_plane, sts_path)
        assert status == 200
        assert sts["metadata"]["labels"]["toolhive-name"] == "web"
        container = sts["spec"]["template"]["spec"]["containers"][0]
        assert (container["name"], container["image"], container["args"]) == (
            "mcp",
            "example/mcp:1",
            ["--verbose"],
        )
        managers = {m["manager"] for m in sts["metadata"]["managedFields"]}
        assert FIELD_MANAGER in managers
        assert sts["metadata"]["ownerReferences"] == [owner]
        _, svc = _get(control_plane, svc_path)
        assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["ports"][0]["port"] == 9000

        # drift: another client changes the image; the runner puts it back
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "mcp", "image": "tampered:1"}]}}}}
        status, answer = control_plane.api_request("PATCH", sts_path, patch)  # a merge patch
        assert status == 200, answer
        with anyio.fail_after(30):
            while (
                _get(control_plane, sts_path)[1]["spec"]["template"]["spec"]["containers"][0]["image"]
                != "example/mcp:1"
            ):
                await anyio.sleep(0.2)
        # drift: the headless Service is deleted; the runner recreates it
        control_plane.api_request("DELETE", svc_path)
        with anyio.fail_after(30):
            while _get(control_plane, svc_path)[0] != 200:
                await anyio.sleep(0.2)
        applies = applier.applies
        await anyio.sleep(2)
        assert applier.applies - applies <= 4  # no apply loop when nothing changes
        tg.cancel_scope.cancel()
    # the MCPServer is gone (its ServiceAccount with it): the garbage collector removes the workload
    # even if the runner re-created it after the finalizer's delete
    control_plane.api_request("DELETE", f"/api/v1/namespaces/{namespace}/serviceaccounts/web-proxy-runner")
    with anyio.fail_after(60):
        while _get(control_plane, sts_path)[0] != 404 or _get(control_plane, svc_path)[0] != 404:
            await anyio.sleep(0.5)
    session = getattr(client.api, "_session", None)
    if session is not None:
        await session.aclose()
    kr8s.Api._instances.clear()
    assert json.dumps(sts)  # the objects are plain JSON
