"""The operator in-cluster (issue 16, items 1 and 5): ``helm install`` of ``helm/thv`` with the
locally built ``thv`` image runs the operator as pods on the real node.

- in-cluster configuration from the mounted ServiceAccount token, the chart's ClusterRole only;
  the kubelet answers the probes; ``/metrics`` is scraped from each pod;
- two replicas with leader election: only the leader writes (the audit log's ``sourceIPs`` are
  the leader pod's IP); deleting the leader pod hands over and the new leader reconciles;
- ``helm upgrade`` to a rebuilt image rolls the operator and leaves running MCP servers alone
  (no runner or MCP server pod restarts, no Deployment write);
- deleting the MCP servers, ``helm uninstall`` and deleting the CRDs leaves no thv object.

The tests run in order and share one release.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devcluster import ControlPlane
from devcluster.e2e import helm_install
from devcluster.helm import Helm, helm_binary
from devcluster.node import NODE_NAME
from devcluster.podkit import create, get, pods, ready, wait_for

CHART = Path(__file__).resolve().parents[2] / "helm" / "thv"
RELEASE, NS = "thv", "thv-system"
SA_USER = f"system:serviceaccount:{NS}:thv"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/toolhive-operator-leader-election"
G = "/apis/toolhive.stacklok.dev/v1alpha1"
WORKLOAD = (
    "deployments",
    "statefulsets",
    "services",
    "configmaps",
    "serviceaccounts",
    "roles",
    "rolebindings",
)


@dataclass
class Installed:
    cp: ControlPlane
    helm: Helm
    thv_image: str
    demo_image: str
    ns: str
    upgraded_ref: str = ""


def _operator_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(cp, NS, "app.kubernetes.io/name=thv-operator")
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
    ]


def _leader(cp: ControlPlane) -> str | None:
    lease = get(cp, LEASE)
    holder = (lease or {}).get("spec", {}).get("holderIdentity") or ""
    return holder.split("_", 1)[0] or None


def _server(name: str, image: str, env: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "transport": "streamable-http",
            "port": 8080,
            "targetPort": 8080,
            "env": [{"name": "DEMO_MARK", "value": env}, {"name": "DEMO_MCP_NO_AUTH", "value": "1"}],
            "podTemplateSpec": {"spec": {"containers": [{"name": "mcp", "imagePullPolicy": "Never"}]}},
        },
    }


@pytest.fixture(scope="module")
def installed(real_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    cp = real_cluster
    helm = Helm(helm_binary(), tmp_path_factory.mktemp("helm-home"))
    thv_image = cp.node.load("thv")
    demo_image = cp.node.load("demo-mcp")
    took = helm_install(cp, helm, thv_image, use_configmap=True, replicas=2)
    print(f"helm install --wait: {took:.1f}s")
    ns = f"incluster-{uuid.uuid4().hex[:6]}"
    create(cp, "/api/v1/namespaces", {"metadata": {"name": ns}})
    wait_for("default ServiceAccount", lambda: get(cp, f"/api/v1/namespaces/{ns}/serviceaccounts/default"))
    yield Installed(cp, helm, thv_image, demo_image, ns)
    # best effort if a test failed half-way (the last test does this and checks it)
    cp.api_request("DELETE", f"/api/v1/namespaces/{ns}")
    helm.run("uninstall", RELEASE, "--namespace", NS, "--wait", kubeconfig=cp.kubeconfig, check=False)


def test_the_operator_runs_in_cluster_with_probes_and_metrics(installed: Installed) -> None:
    cp = installed.cp
    running = wait_for(
        "two Ready operator pods", lambda: len([p for p in _operator_pods(cp) if ready(p)]) == 2
    )
    assert running
    for pod in _operator_pods(cp):
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["spec"]["containers"][0]["image"] == installed.thv_image
        ip = pod["status"]["podIP"]
        with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=5) as r:
            text = r.read().decode()
        assert "thv_reconcile_total" in text or "thv_api_requests_total" in text
        with urllib.request.urlopen(f"http://{ip}:8080/healthz", timeout=5) as r:
            assert r.status == 200
    assert wait_for("a leader", lambda: _leader(cp), timeout=60) in {
        p["metadata"]["name"] for p in _operator_pods(cp)
    }


def _writes_by_operator(cp: ControlPlane, since: int, ns: str) -> list[Any]:
    return [e for e in cp.audit.events(since, user=SA_USER, namespace=ns) if e.is_write]


def test_only_the_leader_writes(installed: Installed) -> None:
    cp, ns = installed.cp, installed.ns
    leader = wait_for("a leader", lambda: _leader(cp), timeout=60)
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in _operator_pods(cp)}
    mark = cp.audit.mark()
    create(cp, f"{G}/namespaces/{ns}/mcpservers", _server("demo", installed.demo_image))
    wait_for("the runner Deployment", lambda: get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/demo"))
    writes = wait_for("the operator's writes", lambda: _writes_by_operator(cp, mark, ns))
    sources = {ip for e in writes for ip in e.source_ips}
    assert sources == {ips[leader]}, (leader, ips, sources)


def test_deleting_the_leader_pod_hands_over(installed: Installed) -> None:
    cp, ns = installed.cp, installed.ns
    old = wait_for("a leader", lambda: _leader(cp), timeout=60)
    t0 = time.monotonic()
    status, body = cp.api_request("DELETE", f"/api/v1/namespaces/{NS}/pods/{old}")
    assert status == 200, body
    new = wait_for("another leader", lambda: (n := _leader(cp)) and n != old and n, timeout=90)
    handover = time.monotonic() - t0
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in _operator_pods(cp)}
    mark = cp.audit.mark()
    status, body = cp.api_request(
        "PATCH",
        f"{G}/namespaces/{ns}/mcpservers/demo",
        {"spec": {"env": [{"name": "DEMO_MARK", "value": "2"}, {"name": "DEMO_MCP_NO_AUTH", "value": "1"}]}},
    )
    assert status == 200, body

    def rolled() -> bool:
        dep = get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/demo") or {}
        return "DEMO_MARK" in str(dep.get("spec", {})) and "'2'" in str(dep.get("spec", {}))

    wait_for("the new leader reconciles the change", lambda: _writes_by_operator(cp, mark, ns), timeout=60)
    sources = {ip for e in _writes_by_operator(cp, mark, ns) for ip in e.source_ips}
    assert sources == {ips[new]}, (new, ips, sources)
    print(f"leader pod deleted -> new leader in {handover:.1f}s")


def test_helm_upgrade_to_a_rebuilt_image_leaves_mcp_servers_alone(installed: Installed) -> None:
    cp, ns = installed.cp, installed.ns

    def settled() -> bool:  # the previous test's change has rolled out: a runner pod and an MCP server pod
        live = pods(cp, ns, "")
        return len(live) == 2 and all(ready(p) and not p["metadata"].get("deletionTimestamp") for p in live)

    runner = wait_for("the runner and MCP server pods settle", settled, timeout=180)
    time.sleep(5)
    assert settled()
    before = {p["metadata"]["uid"] for p in pods(cp, ns, "")}
    dep = get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/demo")
    assert dep is not None and runner
    generation = dep["metadata"]["generation"]
    # a rebuilt operator image: same content, new ref (what a rebuild after a source change gives)
    repo = installed.thv_image.rsplit(":", 1)[0]
    new_tag = f"rebuilt-{uuid.uuid4().hex[:6]}"
    cp.node.ctr("images", "tag", installed.thv_image, f"{repo}:{new_tag}")
    mark = cp.audit.mark()
    installed.helm.run(
        "upgrade", RELEASE, str(CHART), "--namespace", NS, "--reuse-values", "--wait", "--timeout", "240s",
        "--set", f"operator.image.tag={new_tag}",
        kubeconfig=cp.kubeconfig,
    )  # fmt: skip
    wait_for(
        "both operator pods run the new image",
        lambda: (
            {p["spec"]["containers"][0]["image"] for p in _operator_pods(cp) if ready(p)}
            == {f"{repo}:{new_tag}"}
            and len([p for p in _operator_pods(cp) if ready(p)]) == 2
        ),
        timeout=180,
    )
    wait_for("a leader on the new image", lambda: _leader(cp), timeout=90)
    time.sleep(10)  # the new leader's first full resync
    after = {p["metadata"]["uid"] for p in pods(cp, ns, "")}
    assert after == before, "a runner or MCP server pod was restarted by the operator upgrade"
    dep = get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/demo")
    assert dep is not None and dep["metadata"]["generation"] == generation
    assert [
        e.describe() for e in _writes_by_operator(cp, mark, ns) if e.object_ref.resource in WORKLOAD
    ] == []


def test_uninstall_and_crd_deletion_leave_no_thv_object(installed: Installed) -> None:
    cp, ns = installed.cp, installed.ns
    status, body = cp.api_request("DELETE", f"{G}/namespaces/{ns}/mcpservers/demo")
    assert status == 200, body
    wait_for(
        "the MCPServer is gone (finalizer released)",
        lambda: get(cp, f"{G}/namespaces/{ns}/mcpservers/demo") is None,
    )
    installed.helm.run("uninstall", RELEASE, "--namespace", NS, "--wait", kubeconfig=cp.kubeconfig)
    for crd in ("mcpservers", "mcptoolconfigs", "mcpexternalauthconfigs"):
        cp.api_request(
            "DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}.toolhive.stacklok.dev"
        )
    wait_for(
        "the CRDs are gone",
        lambda: (
            not [
                c
                for c in (get(cp, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions") or {}).get(
                    "items", []
                )
                if c["spec"]["group"] == "toolhive.stacklok.dev"
            ]
        ),
    )

    def leftovers() -> list[str]:
        found = []
        for path in (
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            f"/apis/apps/v1/namespaces/{ns}/statefulsets",
            f"/api/v1/namespaces/{ns}/services",
            f"/api/v1/namespaces/{ns}/configmaps",
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
            f"/api/v1/namespaces/{NS}/pods",
            f"/apis/apps/v1/namespaces/{NS}/deployments",
        ):
            for item in (get(cp, path) or {}).get("items", []):
                name = item["metadata"]["name"]
                if name in ("default", "kube-root-ca.crt"):
                    continue
                found.append(f"{path}/{name}")
        for path in (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        ):
            found += [
                f"{path}/{i['metadata']['name']}"
                for i in (get(cp, path) or {}).get("items", [])
                if i["metadata"]["name"].startswith("thv")
                # the development cluster's own, and the host-process operator's of other tests
                # in the session (thvtest.harness.operator_kubeconfig): not the chart's
                and not i["metadata"]["name"].startswith(("thv-dev:", "thv-test-"))
            ]
        return found

    try:
        wait_for("nothing of thv is left", lambda: leftovers() == [], timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}: {leftovers()}") from None
