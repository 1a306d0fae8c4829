"""The operator end to end on the real control plane (seed phases 2-5).

Each test runs its own operator (scoped to the test's namespace) as a ServiceAccount bound
only to the generated ClusterRole. Assertions read the API server; write counts come from
the API server's audit log, never from the operator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from devcluster import ControlPlane
from thvtest import manifests
from thvtest.harness import OPERATOR_USER, run_operator, wait_for, wait_for_object

G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"


def extauth(
    name: str, audience: str = "mcp-backend", header: str | None = "X-Upstream-Token"
) -> dict[str, Any]:
    return manifests.extauth(
        name, audience=audience, scopes=["read", "write"], externalTokenHeaderName=header
    )


def server(name: str, ref: str | None = "test-external-auth", **spec: Any) -> dict[str, Any]:
    return manifests.mcpserver(name, external_auth=ref, **spec)


SECRET = {"metadata": {"name": "oauth-test-secret"}, "stringData": {"client-secret": "test-secret-value"}}


def create(cp: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, out = cp.api_request("POST", path, body)
    assert status == 201 and isinstance(out, dict), out
    return out


def get(cp: ControlPlane, path: str) -> dict[str, Any] | None:
    status, out = cp.api_request("GET", path)
    return out if status == 200 else None


def create_running_servers(cp: ControlPlane, ns: str, n: int) -> None:
    """The client Secret, MCPExternalAuthConfig ``test-external-auth`` and ``n`` MCPServers
    ``t0``… referencing it, then wait until every one is Running."""
    create(cp, f"/api/v1/namespaces/{ns}/secrets", SECRET)
    create(cp, f"{G}/{ns}/mcpexternalauthconfigs", extauth("test-external-auth"))
    for i in range(n):
        create(cp, f"{G}/{ns}/mcpservers", server(f"t{i}"))
    for i in range(n):
        wait_for_object(
            cp, f"{G}/{ns}/mcpservers/t{i}", lambda s: (s.get("status") or {}).get("phase") == "Running", 90
        )


def is_running(server: dict[str, Any]) -> bool:
    return bool(server.get("status", {}).get("phase") == "Running")


def running_and_hashed(server: dict[str, Any]) -> bool:
    return is_running(server) and bool(server.get("status", {}).get("externalAuthConfigHash"))


def container(dep: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return c


def env_var(dep: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in container(dep).get("env", []) if e["name"] == name), None)


def operator_writes(cp: ControlPlane, mark: int, ns: str) -> list[str]:
    return [w.describe() for w in cp.audit.writes(mark, user=OPERATOR_USER, namespace=ns)]


def _setup(cp: ControlPlane, ns: str) -> None:
    create(cp, f"/api/v1/namespaces/{ns}/secrets", SECRET)
    create(cp, f"{G}/{ns}/mcpexternalauthconfigs", extauth("test-external-auth"))


@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
def test_external_auth_end_to_end(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path, use_configmap: bool
) -> None:
    cp, ns = control_plane, namespace
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=use_configmap):
        _setup(cp, ns)
        cfg_path = f"{G}/{ns}/mcpexternalauthconfigs/test-external-auth"
        cfg = wait_for(
            lambda: (
                (c := get(cp, cfg_path))
                and c.get("status", {}).get("configHash")
                and c["metadata"].get("finalizers")
                and c
            ),
            30,
            "hash and finalizer",
        )
        assert "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer" in cfg["metadata"]["finalizers"]
        assert cfg["status"]["observedGeneration"] == cfg["metadata"]["generation"]
        assert "referencingServers" not in cfg["status"]
        create(cp, f"{G}/{ns}/mcpservers", server("external-auth-test"))
        srv_path = f"{G}/{ns}/mcpservers/external-auth-test"
        srv = wait_for(
            lambda: (s := get(cp, srv_path)) and s.get("status", {}).get("phase") == "Running" and s,
            90,
            "phase Running",
        )
        assert srv["status"]["externalAuthConfigHash"] == cfg["status"]["configHash"]
        assert (
            srv["metadata"]["annotations"]["toolhive.stacklok.dev/externalauthconfig-hash"]
            == cfg["status"]["configHash"]
        )
        assert srv["status"]["url"] == f"http://mcp-external-auth-test-proxy.{ns}.svc.cluster.local:8080"
        dep = get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/external-auth-test")
        assert dep is not None
        secret_env = env_var(dep, "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET")
        assert secret_env == {
            "name": "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "oauth-test-secret", "key": "client-secret"}},
        }
        args = container(dep)["args"]
        assert "test-secret-value" not in json.dumps(dep)
        cm_path = f"/api/v1/namespaces/{ns}/configmaps/external-auth-test-runconfig"
        if use_configmap:
            assert not any(a.startswith("--token-exchange") for a in args)
            cm = wait_for(lambda: get(cp, cm_path), 30, "runconfig ConfigMap")
            assert cm["metadata"]["labels"]["toolhive.stacklok.io/mcp-server"] == "external-auth-test"
            rc = json.loads(cm["data"]["runconfig.json"])
            te = next(m for m in rc["middleware_configs"] if m["type"] == "tokenexchange")
            tec = te["parameters"]["token_exchange_config"]
            assert tec["token_url"] == "https://oauth.example.com/token"
            assert tec["client_id"] == "test-client-id" and tec["audience"] == "mcp-backend"
            assert tec["scopes"] == ["read", "write"] and tec["header_strategy"] == "custom"
            assert tec["external_token_header_name"] == "X-Upstream-Token"
            assert not tec.get("client_secret")
            assert "test-secret-value" not in json.dumps(cm)
            tmpl = dep["spec"]["template"]["metadata"]["annotations"]
            assert (
                tmpl["toolhive.stacklok.dev/runconfig-checksum"]
                == cm["metadata"]["annotations"]["toolhive.stacklok.dev/content-checksum"]
            )
        else:
            assert "--token-exchange-url=https://oauth.example.com/token" in args
            assert "--token-exchange-audience=mcp-backend" in args
            assert "--token-exchange-header-name=X-Upstream-Token" in args
            assert get(cp, cm_path) is None

        # a config change reaches the server: new hash, re-rendered Deployment, status mirrored
        mark = cp.audit.mark()
        status, _ = cp.api_request(
            "PATCH", cfg_path, {"spec": {"tokenExchange": {"audience": "other-backend"}}}
        )
        assert status == 200
        new_hash = wait_for(
            lambda: (
                (c := get(cp, cfg_path))
                and c["status"]["configHash"] != cfg["status"]["configHash"]
                and c["status"]["configHash"]
            ),
            30,
            "new hash",
        )
        wait_for(
            lambda: (s := get(cp, srv_path)) and s["status"].get("externalAuthConfigHash") == new_hash,
            60,
            "server status hash follows",
        )
        dep2 = get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/external-auth-test")
        assert dep2 is not None
        annotations = dep2["spec"]["template"]["metadata"]["annotations"]
        assert annotations["toolhive.stacklok.dev/externalauthconfig-hash"] == new_hash
        writes = operator_writes(cp, mark, ns)
        assert any("deployments" in w for w in writes), writes

        # deletion: blocked while referenced, released when the reference goes
        status, _ = cp.api_request("DELETE", cfg_path)
        assert status == 200
        blocked = wait_for(
            lambda: (
                (c := get(cp, cfg_path))
                and any(x["type"] == "DeletionBlocked" for x in c["status"].get("conditions", []))
                and c
            ),
            30,
            "DeletionBlocked",
        )
        assert (
            "external-auth-test"
            in next(x for x in blocked["status"]["conditions"] if x["type"] == "DeletionBlocked")["message"]
        )
        # the guard writes the condition, then posts the Event
        wait_for(
            lambda: any(
                e["reason"] == "DeletionBlocked"
                for e in cp.api_request("GET", f"/api/v1/namespaces/{ns}/events")[1]["items"]
            ),
            30,
            "DeletionBlocked Event",
        )
        cp.api_request("DELETE", srv_path)
        wait_for(lambda: get(cp, cfg_path) is None, 60, "config released and deleted")


def test_missing_reference_fails_then_heals(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    cp, ns = control_plane, namespace
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        create(cp, f"{G}/{ns}/mcpservers", server("lonely", ref="not-there"))
        srv_path = f"{G}/{ns}/mcpservers/lonely"
        srv = wait_for(
            lambda: (s := get(cp, srv_path)) and s.get("status", {}).get("phase") == "Failed" and s,
            30,
            "Failed",
        )
        cond = next(c for c in srv["status"]["conditions"] if c["type"] == "Ready")
        assert cond["reason"] == "ExternalAuthConfigNotFound" and "not-there" in cond["message"]
        assert get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/lonely") is None
        create(cp, f"/api/v1/namespaces/{ns}/secrets", SECRET)
        create(cp, f"{G}/{ns}/mcpexternalauthconfigs", extauth("not-there"))
        wait_for(
            lambda: (s := get(cp, srv_path)) and s["status"].get("phase") == "Running", 90, "heals to Running"
        )


def test_resync_and_restart_cause_zero_writes(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    cp, ns = control_plane, namespace
    _setup(cp, ns)
    for i in range(5):
        create(cp, f"{G}/{ns}/mcpservers", server(f"s{i}"))
    for i in range(100):
        create(
            cp,
            f"{G}/{ns}/mcptoolconfigs",
            {
                "apiVersion": "toolhive.stacklok.dev/v1alpha1",
                "kind": "MCPToolConfig",
                "metadata": {"name": f"tc{i}"},
                "spec": {"toolsFilter": ["fetch", f"t{i}"]},
            },
        )
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True) as running:
        for i in range(5):
            wait_for_object(cp, f"{G}/{ns}/mcpservers/s{i}", running_and_hashed, 90, f"s{i} Running")
        for i in range(100):
            wait_for_object(
                cp,
                f"{G}/{ns}/mcptoolconfigs/tc{i}",
                lambda c: c.get("status", {}).get("configHash"),
                30,
                f"tc{i}",
            )

        time.sleep(3)  # let the last echoes settle
        mark = cp.audit.mark()

        running.call(running.operator.resync_all)
        time.sleep(5)
        writes = operator_writes(cp, mark, ns)
        assert writes == [], writes
    mark = cp.audit.mark()
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        time.sleep(5)
        writes = operator_writes(cp, mark, ns)
        assert writes == [], writes


def test_mode_switch_converges(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    cp, ns = control_plane, namespace
    _setup(cp, ns)
    create(cp, f"{G}/{ns}/mcpservers", server("switch"))
    cm_path = f"/api/v1/namespaces/{ns}/configmaps/switch-runconfig"
    dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/switch"
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        wait_for(lambda: get(cp, cm_path), 60, "ConfigMap in ConfigMap mode")
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=False):
        wait_for(lambda: get(cp, cm_path) is None, 60, "ConfigMap removed in flag mode")
        dep = wait_for(
            lambda: (
                (d := get(cp, dep_path))
                and any(a.startswith("--token-exchange-url") for a in container(d)["args"])
                and d
            ),
            60,
            "flag args",
        )
        assert not any(v["name"] == "runconfig" for v in dep["spec"]["template"]["spec"].get("volumes", []))
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        wait_for(lambda: get(cp, cm_path), 60, "ConfigMap back")


TELEMETRY = {
    "openTelemetry": {
        "enabled": True,
        "endpoint": "http://otel-collector.monitoring:4318",
        "tracing": {"enabled": True, "samplingRate": "0.5"},
        "metrics": {"enabled": True},
    },
    "prometheus": {"enabled": True},
}


@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
def test_operator_upgrade_with_unchanged_manifests_writes_nothing(
    control_plane: ControlPlane,
    namespace: str,
    operator_kubeconfig_path: Path,
    use_configmap: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new thv version over the same manifests (servers with telemetry, whose RunConfig upstream
    stamps with the operator's version) must not restart user workloads: zero Deployment writes,
    and in fact zero writes of any kind, from the audit log."""
    import thv

    cp, ns = control_plane, namespace
    _setup(cp, ns)
    for i in range(3):
        create(cp, f"{G}/{ns}/mcpservers", server(f"tel{i}", telemetry=TELEMETRY))
    monkeypatch.setattr(thv, "__version__", "0.1.0")
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=use_configmap):
        for i in range(3):
            wait_for_object(cp, f"{G}/{ns}/mcpservers/tel{i}", running_and_hashed, 90, f"tel{i} Running")
        time.sleep(3)  # let the last echoes settle
    if use_configmap:
        cm = get(cp, f"/api/v1/namespaces/{ns}/configmaps/tel0-runconfig")
        assert cm is not None
        rc = json.loads(cm["data"]["runconfig.json"])
        assert rc["telemetry_config"]["endpoint"] == "otel-collector.monitoring:4318"
        assert rc["telemetry_config"].get("serviceVersion", "") == ""  # the runner's own, at runtime
    deployments = {
        i: get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/tel{i}")["metadata"]["generation"]  # type: ignore[index]
        for i in range(3)
    }
    monkeypatch.setattr(thv, "__version__", "9.9.9")  # the upgrade
    mark = cp.audit.mark()
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=use_configmap) as running:
        running.call(running.operator.resync_all)
        time.sleep(5)
        writes = operator_writes(cp, mark, ns)
        assert [w for w in writes if "deployments" in w] == []
        assert writes == [], writes
    for i, generation in deployments.items():
        dep = get(cp, f"/apis/apps/v1/namespaces/{ns}/deployments/tel{i}")
        assert dep is not None and dep["metadata"]["generation"] == generation


RESTARTED_AT = "mcpserver.toolhive.stacklok.dev/restarted-at"
RESTART_STRATEGY = "mcpserver.toolhive.stacklok.dev/restart-strategy"
LAST_PROCESSED = "mcpserver.toolhive.stacklok.dev/last-processed-restart"


def _annotate(cp: ControlPlane, path: str, annotations: dict[str, str]) -> None:
    status, out = cp.api_request("PATCH", path, {"metadata": {"annotations": annotations}})  # merge patch
    assert status == 200, out


def _proxy_pods(cp: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name},app=mcpserver"
    out = get(cp, f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
    return [] if out is None else list(out["items"])


def test_restart_annotations_rolling_and_immediate(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    """Upstream's restart semantics: ``rolling`` (default) puts ``restarted-at`` on the pod
    template, ``immediate`` deletes the proxy pods and leaves the template alone; both record
    ``last-processed-restart`` = the request, which a script can wait for; an unparsable request
    and an already processed one do nothing."""
    cp, ns = control_plane, namespace
    _setup(cp, ns)
    srv = {name: f"{G}/{ns}/mcpservers/{name}" for name in ("roll", "now")}
    create(cp, f"{G}/{ns}/mcpservers", server("roll"))
    now = server("now")
    now["metadata"]["annotations"] = {RESTART_STRATEGY: "immediate"}
    create(cp, f"{G}/{ns}/mcpservers", now)
    dep_path = f"/apis/apps/v1/namespaces/{ns}/deployments/{{}}"
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        for name in srv:
            wait_for_object(cp, srv[name], is_running, 90, f"{name} Running")
        old_pods = wait_for(lambda: _proxy_pods(cp, ns, "now"), 60, "proxy pod of 'now'")
        generation = get(cp, dep_path.format("now"))["metadata"]["generation"]  # type: ignore[index]
        mark = cp.audit.mark()

        _annotate(cp, srv["roll"], {RESTARTED_AT: "2026-01-02T03:04:05Z"})
        _annotate(cp, srv["now"], {RESTARTED_AT: "2026-01-02T03:04:05Z"})
        for name in srv:
            wait_for_object(
                cp,
                srv[name],
                lambda s: s["metadata"].get("annotations", {}).get(LAST_PROCESSED) == "2026-01-02T03:04:05Z",
                60,
                f"{name}: last-processed-restart",
            )
        rolled = get(cp, dep_path.format("roll"))
        assert rolled is not None
        assert rolled["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-01-02T03:04:05Z"
        kept = get(cp, dep_path.format("now"))
        assert kept is not None and kept["metadata"]["generation"] == generation
        assert RESTARTED_AT not in (kept["spec"]["template"]["metadata"].get("annotations") or {})
        deleted = {
            e.object_ref.name
            for e in cp.audit.writes(mark, user=OPERATOR_USER, verb="delete", resource="pods")
        }
        assert {p["metadata"]["name"] for p in old_pods} <= deleted
        assert all(
            e.object_ref.namespace == ns for e in cp.audit.writes(mark, user=OPERATOR_USER, resource="pods")
        )
        assert not [n for n in deleted if not n.startswith("now-")]  # never the rolling server's pods

        # processed, repeated or unparsable: nothing more happens
        time.sleep(3)
        mark = cp.audit.mark()
        _annotate(cp, srv["now"], {RESTARTED_AT: "not-a-time"})
        _annotate(cp, srv["roll"], {RESTARTED_AT: "2026-01-02T03:04:05Z", "unrelated": "edit"})
        time.sleep(5)
        assert cp.audit.writes(mark, user=OPERATOR_USER, resource="pods") == []
        assert [w.describe() for w in cp.audit.writes(mark, user=OPERATOR_USER, resource="deployments")] == []
        assert (get(cp, srv["now"]) or {})["metadata"]["annotations"][
            LAST_PROCESSED
        ] == "2026-01-02T03:04:05Z"
