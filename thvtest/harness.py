"""Run the real operator in-process (own thread and event loop) against the control plane,
authenticated as a ServiceAccount bound only to the ClusterRole generated from the code's
RBAC declarations — so every integration test also proves least privilege."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import kr8s

from devcluster import ControlPlane
from thv.clusterrole import cluster_role
from thv.crdgen import crd_objects
from thv.operator.app import Operator
from thv.render.settings import OperatorSettings

OPERATOR_NS = "thv-system"
OPERATOR_SA = "thv-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
RUNNER_IMAGE = "ghcr.io/thv-dev/thv-runner:test"  # not upstream's proxyrunner: token-exchange flags apply


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def wait_for_object(
    cp: ControlPlane,
    path: str,
    check: Callable[[dict[str, Any]], object],
    timeout: float = 60.0,
    what: str = "object",
) -> dict[str, Any]:
    """Poll ``GET path`` until the object exists and ``check(object)`` is truthy; the object."""

    def ready() -> dict[str, Any] | None:
        status, body = cp.api_request("GET", path)
        return body if status == 200 and isinstance(body, dict) and check(body) else None

    found: dict[str, Any] = wait_for(ready, timeout, what)
    return found


def token_kubeconfig(
    cp: ControlPlane, namespace: str, name: str, path: Path, *, seconds: int = 86400
) -> tuple[Path, str]:
    """A kubeconfig at ``path`` that authenticates as ServiceAccount ``namespace/name`` with a
    bound token from a TokenRequest (valid ``seconds``), and that token."""
    status, body = cp.api_request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    if status != 201:
        raise RuntimeError(f"TokenRequest for {namespace}/{name}: HTTP {status}: {body}")
    token = str(body["status"]["token"])
    return cp.write_kubeconfig(path, token, name), token


def install_crds(cp: ControlPlane) -> None:
    """Install (or update) the CRDs and wait until established. When one is new, restart the
    controller manager so its garbage collector watches the new kinds at once (it otherwise
    finds them at its 30 s discovery re-sync, and objects owned by a deleted MCPServer linger)."""
    created = False
    for crd in crd_objects():
        name = crd["metadata"]["name"]
        status, body = cp.api_request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        )
        if status == 404:
            status, body = cp.api_request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
            )
            assert status == 201, body
            created = True
        else:
            crd["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
            status, body = cp.api_request(
                "PUT", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", crd
            )
            assert status == 200, body

        def established(name: str = name) -> bool:
            _, b = cp.api_request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conds = {c["type"]: c["status"] for c in (b.get("status") or {}).get("conditions") or []}
            return conds.get("Established") == "True"

        wait_for(established, 30, f"CRD {name} established")
    if created:
        cp.restart_controller_manager()


def operator_kubeconfig(cp: ControlPlane, directory: Path) -> Path:
    """The chart's identity: SA + generated ClusterRole + binding; a TokenRequest token."""
    cp.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": OPERATOR_NS}})
    cp.api_request(
        "POST", f"/api/v1/namespaces/{OPERATOR_NS}/serviceaccounts", {"metadata": {"name": OPERATOR_SA}}
    )
    role = cluster_role("thv-test-operator")
    cp.api_request("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/thv-test-operator")
    status, body = cp.api_request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    assert status == 201, body
    binding = {
        "metadata": {"name": "thv-test-operator"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "thv-test-operator",
        },
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NS}],
    }
    cp.api_request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    lease_role = {
        "metadata": {"name": "thv-leader"},
        "rules": [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["create", "get", "list", "patch", "update", "watch"],
            }
        ],
    }
    cp.api_request("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{OPERATOR_NS}/roles", lease_role)
    cp.api_request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{OPERATOR_NS}/rolebindings",
        {
            "metadata": {"name": "thv-leader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "thv-leader"},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NS}],
        },
    )
    return token_kubeconfig(cp, OPERATOR_NS, OPERATOR_SA, directory / "operator.kubeconfig")[0]


@dataclass
class RunningOperator:
    operator: Operator
    portal: anyio.from_thread.BlockingPortal
    future: Future[Any]

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(fn, *args)


@contextlib.contextmanager
def run_operator(
    kubeconfig: Path,
    *,
    namespaces: list[str] | None,
    use_configmap: bool,
    resync_period: float = 300.0,
    leader_election_namespace: str | None = None,
    runner_image: str = RUNNER_IMAGE,
    health_address: tuple[str, int] | None = None,
) -> Iterator[RunningOperator]:
    """Start an operator in a thread; yields once its caches are synced and subscribers run."""
    settings = OperatorSettings(runner_image=runner_image, use_configmap=use_configmap)
    with anyio.from_thread.start_blocking_portal() as portal:

        async def make() -> Operator:
            from thv.kube import connect

            kr8s.Api._instances.clear()
            client = await connect(str(kubeconfig))
            return Operator(
                client,
                settings,
                namespaces=namespaces,
                resync_period=resync_period,
                leader_election_namespace=leader_election_namespace,
                health_address=health_address,
            )

        op = portal.call(make)
        future = portal.start_task_soon(op.run)
        running = RunningOperator(op, portal, future)
        if leader_election_namespace is None:
            wait_for(lambda: op.ready.is_set() or future.done(), 60, "operator ready")
            if future.done():
                future.result()
        try:
            yield running
        finally:
            future.cancel()
            with contextlib.suppress(BaseException):
                future.result(timeout=10)
