"""The Helm chart ``helm/thv``, checked with a real Helm (v3.22.0) built from its Go module by
``tools/helm/build.sh`` (cached; a cold build takes a few minutes, see ``devcluster.helm``).

- ``helm lint --strict`` passes, with the default values and with the second values set;
- ``helm template`` matches the committed snapshots ``tests/fixtures/helm/template-<set>.yaml``
  for the default values (``default``) and ``tests/fixtures/helm/values-custom.yaml``
  (``custom``). Rendering is deterministic: fixed release name, namespace and
  ``--kube-version``, no CRDs (they are generated and checked elsewhere). After an intended
  chart change, rewrite the snapshots with
  ``THV_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/integration/test_helm.py -k snapshot``
  and review the diff;
- the ClusterRole has exactly the rules of ``thv.rbac.cluster_role()`` and no Role or
  ClusterRole has a wildcard; the leader-election Role grants what the code declares;
- ``values.schema.json`` (and the template's own guard) reject bad values with Helm's message;
- ``helm install --wait`` into the local control plane, then the real operator runs in-process
  as the chart's ServiceAccount (a TokenRequest token, the chart's ClusterRole and
  leader-election Role, nothing else) and reconciles an example with no request forbidden;
  ``helm uninstall`` removes every release object (CRDs stay, as Helm never deletes them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import devcluster.helm
from devcluster import ControlPlane
from devcluster.demo import PATHS
from devcluster.helm import helm_binary
from thv.clusterrole import cluster_role
from thv.operator.leader import LEASE_NAME
from thv.rbac import NAMESPACED_OWNERS, declared
from thvtest.capture import uncaptured
from thvtest.harness import RUNNER_IMAGE, run_operator, token_kubeconfig, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "thv"
FIXTURES = REPO / "tests" / "fixtures" / "helm"
EXAMPLE = REPO / "examples" / "complete-example.yaml"
# the snapshots' release: fixed, so the rendering is deterministic
RELEASE, RELEASE_NS, KUBE_VERSION = "thv", "thv-system", "1.36.3"
VALUE_SETS = {"default": [], "custom": ["-f", str(FIXTURES / "values-custom.yaml")]}
RBAC = "/apis/rbac.authorization.k8s.io/v1"


class Helm(devcluster.helm.Helm):
    """``devcluster.helm.Helm`` plus ``helm template`` of the chart with the snapshots' fixed
    release, namespace and Kubernetes version."""

    def template(self, *args: str) -> str:
        return self.run(
            "template", RELEASE, str(CHART), "--namespace", RELEASE_NS, "--kube-version", KUBE_VERSION, *args
        ).stdout


@pytest.fixture(scope="session")
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Helm built from its Go module (progress reaches the terminal: a cold build takes minutes)."""
    with uncaptured(request):
        binary = helm_binary()
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


# -- offline: lint, snapshots, RBAC, schema -------------------------------------------------------
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_strict(helm: Helm, value_set: str) -> None:
    out = helm.run("lint", "--strict", str(CHART), *VALUE_SETS[value_set]).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_template_snapshot(helm: Helm, value_set: str) -> None:
    rendered = helm.template(*VALUE_SETS[value_set])
    snapshot = FIXTURES / f"template-{value_set}.yaml"
    if os.environ.get("THV_UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(rendered)
        return
    assert snapshot.exists(), f"no {snapshot}: run with THV_UPDATE_SNAPSHOTS=1 to create it"
    assert rendered == snapshot.read_text(), (
        f"helm template differs from {snapshot.relative_to(REPO)}; if intended, rerun with "
        "THV_UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_custom_values_render_what_they_say(helm: Helm) -> None:
    objs = docs(helm.template(*VALUE_SETS["custom"]))
    kinds = sorted(o["kind"] for o in objs)
    # namespace list: one RoleBinding per namespace instead of the ClusterRoleBinding; existing
    # ServiceAccount, no leader election, no metrics Service
    assert kinds == ["ClusterRole", "Deployment", "RoleBinding", "RoleBinding"], kinds
    assert {rb["metadata"]["namespace"] for rb in by_kind(objs, "RoleBinding")} == {"team-a", "team-b"}
    (dep,) = by_kind(objs, "Deployment")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TOOLHIVE_USE_CONFIGMAP"] == "false"
    assert env["WATCH_NAMESPACE"] == "team-a,team-b"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_SERVICE_NAME"] == "thv-operator-custom"
    assert env["HTTPS_PROXY"] == "http://proxy.example.com:3128"
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "thv-existing"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rbac_is_generated_and_has_no_wildcards(helm: Helm, value_set: str) -> None:
    objs = docs(helm.template(*VALUE_SETS[value_set]))
    (role,) = by_kind(objs, "ClusterRole")
    assert role["rules"] == cluster_role()["rules"]
    for obj in by_kind(objs, "ClusterRole") + by_kind(objs, "Role"):
        for rule in obj["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field, [])), (obj["metadata"], rule)
    leader_roles = by_kind(objs, "Role")
    if value_set == "default":  # leader election on: its Role grants what the code declares
        (leader,) = leader_roles
        for owner in NAMESPACED_OWNERS:
            for need in declared()[owner]:
                for res in need.resources:
                    granted = {
                        v
                        for r in leader["rules"]
                        if need.group in r["apiGroups"] and res in r["resources"]
                        for v in r["verbs"]
                    }
                    assert set(need.verbs) <= granted, (owner, need, leader["rules"])
    else:
        assert leader_roles == []


SCHEMA_ERROR = "values don't meet the specifications of the schema(s) in the following chart(s)"
BAD_VALUES = [
    ("operator.replicas=two", "at '/operator/replicas': got string, want integer"),
    (
        "operator.image.pullPolicy=Sometimes",
        "at '/operator/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ),
    ("replicaCount=2", "at '': additional properties 'replicaCount' not allowed"),
    ("operator.useConfigMap=yes", "at '/operator/useConfigMap': got string, want boolean"),
    ("operator.metricsPort=0", "at '/operator/metricsPort': minimum: got 0, want 1"),
    (
        "operator.watchNamespaces={Team_A}",
        "at '/operator/watchNamespaces/0': 'Team_A' does not match pattern",
    ),
    ("operator.watchNamespaces={a,a}", "at '/operator/watchNamespaces': items at 0 and 1 are equal"),
    ("operator.resources.limit.cpu=1", "at '/operator/resources': additional properties 'limit' not allowed"),
    ("otel.endpoint=collector:4317", "at '/otel/endpoint': 'collector:4317' does not match pattern"),
    ("metrics.enabled=true", "at '/metrics': additional properties 'enabled' not allowed"),
    (
        "operator.replicas=2,operator.leaderElect=false",
        "operator.replicas > 1 needs operator.leaderElect=true",
    ),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[v for v, _ in BAD_VALUES])
def test_bad_values_are_rejected(helm: Helm, values: str, message: str) -> None:
    proc = helm.run("template", RELEASE, str(CHART), "--set", values, check=False)
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    if message.startswith("operator.replicas"):
        return  # the template's own guard (`fail`), which lint by design only reports as [INFO]
    assert SCHEMA_ERROR in proc.stderr, proc.stderr
    lint = helm.run("lint", "--strict", str(CHART), "--set", values, check=False)
    assert lint.returncode != 0 and message in lint.stdout, lint.stdout


# -- online: install, least privilege, uninstall --------------------------------------------------
def _get(cp: ControlPlane, path: str) -> dict[str, Any]:
    status, body = cp.api_request("GET", path)
    assert status == 200, (path, body)
    result: dict[str, Any] = body
    return result


def _gone(cp: ControlPlane, path: str) -> bool:
    return cp.api_request("GET", path)[0] == 404


def _conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def _established(cp: ControlPlane, path: str) -> bool:
    return _conditions(_get(cp, path)).get("Established") == "True"


@pytest.fixture
def release(control_plane: ControlPlane, helm: Helm) -> Iterator[tuple[str, str]]:
    """A unique release name and namespace (cluster-scoped names derive from the release, so
    they cannot collide with the session's other objects); uninstalled and deleted afterwards."""
    name = f"thv-{uuid.uuid4().hex[:6]}"
    ns = f"{name}-system"
    yield name, ns
    with contextlib.suppress(Exception):
        helm.run("uninstall", name, "-n", ns, "--ignore-not-found", kubeconfig=control_plane.kubeconfig)
    control_plane.api_request("DELETE", f"/api/v1/namespaces/{ns}")


def test_install_runs_the_operator_with_least_privilege_and_uninstalls(
    helm: Helm, control_plane: ControlPlane, namespace: str, release: tuple[str, str], tmp_path: Path
) -> None:
    rel, rns = release
    fullname = rel  # the release name contains the chart name, so it is the fullname
    kubeconfig = control_plane.kubeconfig
    helm.run(
        "install", rel, str(CHART), "--namespace", rns, "--create-namespace", "--wait", "--timeout", "90s",
        "--set", "operator.image.repository=registry.invalid/thv",
        "--set", "operator.useConfigMap=true",
        "--set", f"operator.runnerImage={RUNNER_IMAGE}",
        "--set", "otel.endpoint=http://otel-collector.invalid:4318",
        "--set", "otel.serviceName=thv-helm-test",
        kubeconfig=kubeconfig,
    )  # fmt: skip

    # the chart's CRDs are Established (installed by Helm, or already there from the session)
    crd_names = [
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted((CHART / "crds").glob("*.yaml"))
    ]
    assert len(crd_names) == 3
    for crd in crd_names:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
        wait_for(functools.partial(_established, control_plane, path), 30, f"CRD {crd} Established")

    # the release's objects
    dep_path = f"/apis/apps/v1/namespaces/{rns}/deployments/{fullname}"
    dep = _get(control_plane, dep_path)
    assert _conditions(dep).get("Available") == "True", dep.get("status")  # --wait; kwok makes pods Ready
    assert dep["metadata"]["annotations"]["meta.helm.sh/release-name"] == rel
    pod_spec = dep["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == fullname
    (container,) = pod_spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TOOLHIVE_USE_CONFIGMAP"] == "true"
    assert env["TOOLHIVE_RUNNER_IMAGE"] == RUNNER_IMAGE
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.invalid:4318"
    assert env["OTEL_SERVICE_NAME"] == "thv-helm-test"
    assert "WATCH_NAMESPACE" not in env
    assert "--leader-elect" in container["args"]

    sa_path = f"/api/v1/namespaces/{rns}/serviceaccounts/{fullname}"
    cr_path = f"{RBAC}/clusterroles/{fullname}-manager"
    crb_path = f"{RBAC}/clusterrolebindings/{fullname}-manager"
    role_path = f"{RBAC}/namespaces/{rns}/roles/{fullname}-leader-election"
    rb_path = f"{RBAC}/namespaces/{rns}/rolebindings/{fullname}-leader-election"
    svc_path = f"/api/v1/namespaces/{rns}/services/{fullname}-metrics"
    _get(control_plane, sa_path)
    assert _get(control_plane, cr_path)["rules"] == cluster_role()["rules"]
    subject = {"kind": "ServiceAccount", "name": fullname, "namespace": rns}
    crb = _get(control_plane, crb_path)
    assert crb["roleRef"]["name"] == f"{fullname}-manager" and crb["subjects"] == [subject]
    assert _get(control_plane, role_path)["rules"][0]["resources"] == ["leases"]
    rb = _get(control_plane, rb_path)
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{fullname}-leader-election",
    }
    assert rb["subjects"] == [subject]
    assert _get(control_plane, svc_path)["spec"]["ports"][0]["port"] == 8080

    # least privilege: the real operator as the chart's ServiceAccount, nothing else granted
    sa_kubeconfig, _ = token_kubeconfig(
        control_plane, rns, fullname, tmp_path / "chart-sa.kubeconfig", seconds=3600
    )
    user = f"system:serviceaccount:{rns}:{fullname}"
    since = control_plane.audit.mark()
    server = "authenticated-fetch"
    with run_operator(
        sa_kubeconfig, namespaces=[namespace], use_configmap=True, leader_election_namespace=rns
    ) as running:
        for doc in yaml.safe_load_all(EXAMPLE.read_text()):
            status, body = control_plane.api_request("POST", PATHS[doc["kind"]].format(ns=namespace), doc)
            assert status == 201, body

        server_dep = f"/apis/apps/v1/namespaces/{namespace}/deployments/{server}"
        server_cr = PATHS["MCPServer"].format(ns=namespace) + f"/{server}"

        def phase() -> str | None:
            if running.future.done():
                running.future.result()  # the operator died: raise its error
            if control_plane.api_request("GET", server_dep)[0] != 200:
                return None
            status: dict[str, Any] = _get(control_plane, server_cr).get("status") or {}
            return status.get("phase")

        wait_for(lambda: phase() is not None, 60, f"Deployment {server} created by the operator")
        assert running.operator.ready.is_set()  # caches synced: every list/watch was allowed
        wait_for(lambda: phase() == "Running", 60, f"MCPServer {server} Running (status written)")
        _get(control_plane, f"/api/v1/namespaces/{namespace}/configmaps/{server}-runconfig")  # ConfigMap mode
        lease = _get(control_plane, f"/apis/coordination.k8s.io/v1/namespaces/{rns}/leases/{LEASE_NAME}")
        assert lease["spec"]["holderIdentity"]
    events = control_plane.audit.events(since, user=user)
    assert any(e.is_write and e.succeeded and e.object_ref.namespace == namespace for e in events)
    # (the audit policy logs writes only: a forbidden read would have kept the caches unsynced)
    forbidden = [e.describe() for e in events if e.response_status.code == 403]
    assert forbidden == [], forbidden

    # uninstall removes every release object; CRDs stay
    helm.run("uninstall", rel, "--namespace", rns, "--wait", "--timeout", "60s", kubeconfig=kubeconfig)
    for path in (dep_path, sa_path, cr_path, crb_path, role_path, rb_path, svc_path):
        wait_for(functools.partial(_gone, control_plane, path), 30, f"{path} deleted")
    out = helm.run("list", "--namespace", rns, "--short", kubeconfig=kubeconfig).stdout
    assert rel not in out.split()
    for crd in crd_names:
        _get(control_plane, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
