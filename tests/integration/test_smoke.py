"""The local control plane is real: controllers, garbage collection, RBAC, CRD validation, audit."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from thv.devcluster import ControlPlane
from thv.devcluster.controlplane import ADMIN_USER
from thv.kube import Forbidden, Invalid, KubeClient, NotFound
from thv.kube.resources import (
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    SERVICEACCOUNTS,
    Resource,
)

pytestmark = pytest.mark.anyio


async def eventually(fn: Any, timeout: float = 60.0) -> Any:
    with anyio.fail_after(timeout):
        while True:
            result = await fn()
            if result:
                return result
            await anyio.sleep(0.25)


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/fake:1"}]},
            },
        },
    }


async def test_deployment_becomes_available(kube: KubeClient, namespace: str) -> None:
    await kube.create(DEPLOYMENTS, json.dumps(_deployment("web")).encode(), namespace)

    async def available() -> bool:
        d = json.loads(await kube.get(DEPLOYMENTS, "web", namespace))
        return bool(d.get("status", {}).get("availableReplicas") == 2)

    await eventually(available)


async def test_garbage_collector_deletes_orphans(kube: KubeClient, namespace: str) -> None:
    dep = json.loads(await kube.create(DEPLOYMENTS, json.dumps(_deployment("owner")).encode(), namespace))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "owner",
                    "uid": dep["metadata"]["uid"],
                }
            ],
        },
    }
    await kube.create(CONFIGMAPS, json.dumps(cm).encode(), namespace)
    await kube.delete(DEPLOYMENTS, "owner", namespace)

    async def gone() -> bool:
        return await kube.get_or_none(CONFIGMAPS, "child", namespace) is None

    await eventually(gone)


async def test_rbac_is_enforced_for_service_account_tokens(
    kube: KubeClient, namespace: str, control_plane: ControlPlane, tmp_path: Any
) -> None:
    import kr8s

    from thv.kube import connect

    await kube.create(SERVICEACCOUNTS, json.dumps({"metadata": {"name": "reader"}}).encode(), namespace)
    tr = await kube.request(
        "POST",
        SERVICEACCOUNTS.path(namespace, "reader", "token"),
        verb="create",
        resource="serviceaccounts/token",
        content=json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            }
        ).encode(),
    )
    token = json.loads(tr)["status"]["token"]
    kc = control_plane.write_kubeconfig(tmp_path / "reader.kubeconfig", token, "reader")
    kr8s.Api._instances.clear()
    reader = await connect(str(kc))
    with pytest.raises(Forbidden):
        await reader.list(SECRETS, namespace)
    role = {
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
    }
    binding = {
        "metadata": {"name": "secret-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }
    await kube.create(ROLES, json.dumps(role).encode(), namespace)
    await kube.create(ROLEBINDINGS, json.dumps(binding).encode(), namespace)

    async def allowed() -> bool:
        try:
            await reader.list(SECRETS, namespace)
            return True
        except Forbidden:
            return False

    await eventually(allowed)
    await reader.api._session.aclose()


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.thv.dev"},
    "spec": {
        "group": "smoke.thv.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


async def test_crd_is_served_and_validates(kube: KubeClient, namespace: str) -> None:
    if await kube.get_or_none(CRDS, "widgets.smoke.thv.dev") is None:
        await kube.create(CRDS, json.dumps(CRD).encode())
    widgets = Resource("smoke.thv.dev", "v1", "widgets", "Widget")

    async def established() -> bool:
        try:
            await kube.list(widgets, namespace)
            return True
        except NotFound:
            return False

    await eventually(established)
    ok = {"apiVersion": "smoke.thv.dev/v1", "kind": "Widget", "metadata": {"name": "ok"}, "spec": {"size": 3}}
    await kube.create(widgets, json.dumps(ok).encode(), namespace)
    bad = {
        "apiVersion": "smoke.thv.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {"size": 99},
    }
    with pytest.raises(Invalid) as err:
        await kube.create(widgets, json.dumps(bad).encode(), namespace)
    assert "spec.size" in err.value.message


async def test_audit_log_records_writes(
    kube: KubeClient, namespace: str, control_plane: ControlPlane
) -> None:
    mark = control_plane.audit.mark()
    await kube.create(CONFIGMAPS, json.dumps({"metadata": {"name": "audited"}}).encode(), namespace)

    async def logged() -> bool:
        writes = control_plane.audit.writes(mark, user=ADMIN_USER, resource="configmaps", namespace=namespace)
        return any(w.verb == "create" and w.object_ref.name == "audited" for w in writes)

    await eventually(logged, 10)
