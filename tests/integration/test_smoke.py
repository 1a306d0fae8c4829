"""The local control plane is real: controllers, scheduler + kwok, garbage collection, RBAC,
CRD validation, the audit log, and the fault-injection helpers the watch tests rely on.

Deliberately written against kr8s and plain HTTP only, not thv's own client."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import kr8s
import pytest
import yaml
from kr8s.asyncio.objects import (
    ConfigMap,
    CustomResourceDefinition,
    Deployment,
    Pod,
    Role,
    RoleBinding,
    ServiceAccount,
    new_class,
)

from devcluster import ADMIN_USER, COMPONENT_USERS, NODE_NAME, ControlPlane

pytestmark = pytest.mark.anyio


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 60.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy."""
    try:
        with anyio.fail_after(timeout):
            while True:
                result = await check()
                if result:
                    return result
                await anyio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {timeout:.0f}s") from None


def deployment(name: str, namespace: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/fake:1"}]},
            },
        },
    }


async def test_deployment_becomes_available(kube: Any, namespace: str) -> None:
    dep = Deployment(deployment("web", namespace), api=kube)
    await dep.create()

    async def available() -> bool:
        await dep.refresh()
        raw: dict[str, Any] = dep.raw
        conds = {c["type"]: c["status"] for c in (raw.get("status") or {}).get("conditions") or []}
        return (raw.get("status") or {}).get("availableReplicas") == 2 and conds.get("Available") == "True"

    await eventually(available, what="Deployment Available with 2 replicas")
    pods = [p async for p in kube.get(Pod, namespace=namespace, label_selector={"app": "web"})]
    assert len(pods) == 2
    for pod in pods:
        assert pod.raw["spec"]["nodeName"] == NODE_NAME  # bound by kube-scheduler
        ready = {c["type"]: c["status"] for c in pod.raw["status"]["conditions"]}
        assert ready["Ready"] == "True"  # made Ready by kwok
        assert pod.raw["status"]["phase"] == "Running"


async def test_garbage_collector_removes_dependents_of_deleted_owner(kube: Any, namespace: str) -> None:
    owner = Deployment(deployment("owner", namespace, replicas=0), api=kube)
    await owner.create()
    uid = owner.raw["metadata"]["uid"]

    def dependent(name: str) -> ConfigMap:
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": uid}
        return ConfigMap(
            {"metadata": {"name": name, "namespace": namespace, "ownerReferences": [ref]}}, api=kube
        )

    before = dependent("made-before-owner-deleted")
    await before.create()
    await owner.delete()
    await eventually(lambda: _gone(owner), what="owner Deployment deleted")
    # created after its owner is gone: the GC finds the owner absent and deletes it too
    after = dependent("made-after-owner-deleted")
    await after.create()
    await eventually(lambda: _gone(before), what="cascading deletion of a dependent")
    await eventually(lambda: _gone(after), what="deletion of a dependent with a dangling owner")


async def _gone(obj: Any) -> bool:
    return not await obj.exists()


async def test_service_account_token_is_subject_to_rbac(
    kube: Any, namespace: str, control_plane: ControlPlane
) -> None:
    sa = ServiceAccount({"metadata": {"name": "reader", "namespace": namespace}}, api=kube)
    await sa.create()
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    async with kube.call_api(
        "POST",
        version="v1",
        namespace=namespace,
        url="serviceaccounts/reader/token",
        content=json.dumps(request),
    ) as r:
        token = r.json()["status"]["token"]

    async with httpx.AsyncClient(
        base_url=control_plane.server,
        verify=str(control_plane.ca_path),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        url = f"/api/v1/namespaces/{namespace}/secrets"
        denied = await client.get(url)
        assert denied.status_code == 403, denied.text
        assert f"system:serviceaccount:{namespace}:reader" in denied.json()["message"]

        role = Role(
            {
                "metadata": {"name": "secret-reader", "namespace": namespace},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
            },
            api=kube,
        )
        binding = RoleBinding(
            {
                "metadata": {"name": "secret-reader", "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
            api=kube,
        )
        await role.create()
        await binding.create()

        async def allowed() -> bool:
            return (await client.get(url)).status_code == 200

        await eventually(allowed, timeout=10, what="list Secrets allowed after the RoleBinding")
        # still nothing beyond the Role
        assert (await client.get(f"/api/v1/namespaces/{namespace}/configmaps")).status_code == 403


CRD_YAML = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: integer, minimum: 1, maximum: 10}}
              colour: {{type: string, enum: [red, green]}}
"""


async def test_crd_is_served_and_validates(kube: Any, namespace: str) -> None:
    group = f"{namespace}.smoke.thv.dev"  # unique: CRDs are cluster-scoped
    crd = CustomResourceDefinition(yaml.safe_load(CRD_YAML.format(group=group)), api=kube)
    await crd.create()
    try:

        async def established() -> bool:
            await crd.refresh()
            raw: dict[str, Any] = crd.raw
            conds = (raw.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

        await eventually(established, timeout=30, what="CRD Established")
        widget_cls = new_class(
            "Widget", version=f"{group}/v1", plural="widgets", namespaced=True, asyncio=True
        )

        ok = widget_cls({"metadata": {"name": "ok", "namespace": namespace}, "spec": {"size": 3}}, api=kube)
        await ok.create()
        await ok.refresh()
        assert ok.raw["spec"]["size"] == 3

        bad = widget_cls(
            {"metadata": {"name": "bad", "namespace": namespace}, "spec": {"size": 99, "colour": "blue"}},
            api=kube,
        )
        with pytest.raises(kr8s.ServerError) as err:
            await bad.create()
        assert err.value.response is not None
        assert err.value.response.status_code == 422
        status: Any = err.value.status  # kr8s types it loosely: the decoded Status object
        message = status["message"]
        assert "spec.size" in message and "spec.colour" in message, message
        assert not await bad.exists()
    finally:
        await crd.delete()


async def test_audit_log_records_admin_writes(kube: Any, namespace: str, control_plane: ControlPlane) -> None:
    audit = control_plane.audit
    mark = audit.mark()
    cm = ConfigMap({"metadata": {"name": "audited", "namespace": namespace}, "data": {"a": "1"}}, api=kube)
    await cm.create()
    await cm.patch({"data": {"a": "2"}})

    async def logged() -> list[Any]:
        return audit.writes(mark, user=ADMIN_USER, resource="configmaps", namespace=namespace)

    await eventually(logged, timeout=10, what="audit events")
    await anyio.sleep(0.5)
    writes = audit.writes(mark, user=ADMIN_USER, resource="configmaps", namespace=namespace)
    assert [(w.verb, w.object_ref.name, w.response_status.code) for w in writes] == [
        ("create", "audited", 201),
        ("patch", "audited", 200),
    ], [w.describe() for w in writes]
    # reads are not logged
    assert not audit.events(mark, verb=["get", "list", "watch"])


async def test_audit_log_tells_components_apart(
    kube: Any, namespace: str, control_plane: ControlPlane
) -> None:
    audit = control_plane.audit
    mark = audit.mark()
    dep = Deployment(deployment("who", namespace, replicas=1), api=kube)
    await dep.create()

    def by(user: str, resource: str, subresource: str = "", verb: str = "create") -> list[Any]:
        return audit.writes(
            mark, user=user, verb=verb, resource=resource, subresource=subresource, namespace=namespace
        )

    async def all_logged() -> bool:
        return bool(
            by(COMPONENT_USERS["kube-controller-manager"], "replicasets")
            and by(COMPONENT_USERS["kube-controller-manager"], "pods")
            and by(COMPONENT_USERS["kube-scheduler"], "pods", "binding")
            and by(COMPONENT_USERS["kwok"], "pods", "status", verb="patch")
        )

    await eventually(all_logged, timeout=30, what="writes by kcm, scheduler and kwok")
    admin = audit.writes(mark, user=ADMIN_USER, namespace=namespace)
    assert [(w.verb, w.object_ref.resource) for w in admin] == [("create", "deployments")]


async def test_compaction_and_apiserver_restart_expire_old_resource_versions(
    kube: Any, namespace: str, control_plane: ControlPlane
) -> None:
    cm = ConfigMap({"metadata": {"name": "versions", "namespace": namespace}, "data": {"v": "0"}}, api=kube)
    await cm.create()
    old_rv = cm.raw["metadata"]["resourceVersion"]
    for i in range(3):
        await cm.patch({"data": {"v": str(i + 1)}})
    rev = await control_plane.aexpire_resource_versions()  # compact etcd, restart kube-apiserver
    assert rev > int(old_rv)

    headers = {"Authorization": f"Bearer {control_plane.admin_token}"}
    async with httpx.AsyncClient(
        base_url=control_plane.server, verify=str(control_plane.ca_path), headers=headers, timeout=10
    ) as client:
        url = f"/api/v1/namespaces/{namespace}/configmaps"
        exact = await client.get(url, params={"resourceVersion": old_rv, "resourceVersionMatch": "Exact"})
        assert exact.status_code == 410, exact.text
        params = {"watch": "true", "resourceVersion": old_rv, "timeoutSeconds": "5"}
        async with client.stream("GET", url, params=params) as watch:
            first = json.loads(await anext(watch.aiter_lines()))
        assert first["type"] == "ERROR" and first["object"]["code"] == 410, first
        # and the cluster works as before
        cm2 = ConfigMap({"metadata": {"name": "after-restart", "namespace": namespace}}, api=kube)
        await cm2.create()
        assert await cm2.exists()
