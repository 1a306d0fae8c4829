"""The benchmark peer: the upstream ToolHive operator (``tools/toolhive``, v0.3.11) runs against
the session control plane with **thv's** CRDs for the shared kinds, under its own
ServiceAccount, scoped to a fresh namespace, and reconciles an MCPServer in ConfigMap mode.

The build is cached (``~/.cache/thv/toolhive``); a cold build takes about 4 minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devcluster import ControlPlane
from thv.crdgen import crd_objects
from thvtest import manifests
from thvtest.harness import wait_for
from thvtest.peer import (
    PEER_NS,
    PEER_ROLE,
    PEER_USER,
    build_peer,
    install_peer_crds,
    peer_kubeconfig,
    peer_process,
)

G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _get(cp: ControlPlane, path: str) -> dict[str, Any]:
    status, body = cp.api_request("GET", path)
    return body if status == 200 and isinstance(body, dict) else {}


def test_upstream_operator_reconciles_with_thv_crds(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    binary = build_peer()
    cp = control_plane
    extra = install_peer_crds(cp)
    ours = {c["metadata"]["name"]: c for c in crd_objects()}
    try:
        # the shared kinds are served by thv's CRDs; upstream's only for the kinds thv lacks
        assert "mcpregistries.toolhive.stacklok.dev" in extra
        assert not set(extra) & set(ours)
        for name, crd in ours.items():
            live = _get(cp, f"{CRD_API}/{name}")
            assert live["spec"]["versions"] == crd["spec"]["versions"], name

        kubeconfig = peer_kubeconfig(cp, tmp_path)
        mark = cp.audit.mark()
        proc = peer_process(binary, kubeconfig, tmp_path / "toolhive-operator.log", namespaces=[namespace])
        with proc:
            proc.wait_ready(60)
            cp.api_request(
                "POST",
                f"/api/v1/namespaces/{namespace}/secrets",
                {"metadata": {"name": "oauth"}, "stringData": {"client-secret": "x"}},
            )
            status, body = cp.api_request(
                "POST",
                f"{G}/{namespace}/mcpexternalauthconfigs",
                manifests.extauth(
                    "auth",
                    audience="peer-aud",
                    secret=("oauth", "client-secret"),
                    tokenUrl="https://idp.example.com/token",
                    clientId="peer-client",
                ),
            )
            assert status == 201, body
            status, body = cp.api_request(
                "POST",
                f"{G}/{namespace}/mcpservers",
                manifests.mcpserver(
                    "fetch",
                    external_auth="auth",
                    defaults=False,
                    image="example.invalid/mcp:1",
                ),
            )
            assert status == 201, body

            cm_path = f"/api/v1/namespaces/{namespace}/configmaps/fetch-runconfig"
            cm = wait_for(
                lambda: _get(cp, cm_path), 45, f"upstream's ConfigMap fetch-runconfig\n{proc.tail()}"
            )
            assert cm["metadata"]["labels"]["toolhive.stacklok.io/mcp-server"] == "fetch"
            assert cm["metadata"]["annotations"]["toolhive.stacklok.dev/content-checksum"]
            runconfig = json.loads(cm["data"]["runconfig.json"])
            assert runconfig["name"] == "fetch"
            (mw,) = [m for m in runconfig["middleware_configs"] if m["type"] == "tokenexchange"]
            assert mw["parameters"]["token_exchange_config"]["audience"] == "peer-aud"

            dep_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/fetch"
            dep = wait_for(lambda: _get(cp, dep_path), 30, "upstream's Deployment fetch")
            env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
            assert next(
                e["valueFrom"]["secretKeyRef"]
                for e in env
                if e["name"] == "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"
            ) == {"name": "oauth", "key": "client-secret"}

            # the config's hash is mirrored into the server's status (both through thv's CRD schema)
            def hashes() -> bool:
                cfg = _get(cp, f"{G}/{namespace}/mcpexternalauthconfigs/auth").get("status") or {}
                srv = _get(cp, f"{G}/{namespace}/mcpservers/fetch").get("status") or {}
                return bool(cfg.get("configHash")) and srv.get("externalAuthConfigHash") == cfg["configHash"]

            wait_for(hashes, 30, "status.externalAuthConfigHash == config's status.configHash")
            mem = proc.memory()
            assert mem is not None and mem.rss_kib > 0 and mem.hwm_kib >= mem.rss_kib

        # the audit log attributes the writes to the peer's own identity, and it had every permission
        writes = cp.audit.writes(mark, user=PEER_USER, namespace=namespace)
        assert any(w.verb == "create" and w.object_ref.name == "fetch-runconfig" for w in writes), [
            w.describe() for w in writes
        ]
        denied = [
            e.describe() for e in cp.audit.events(mark, user=PEER_USER) if e.response_status.code == 403
        ]
        assert denied == []
    finally:
        for name in extra:  # leave the session cluster with thv's CRDs only
            cp.api_request("DELETE", f"{CRD_API}/{name}")
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        cp.api_request("DELETE", f"{rbac}/clusterrolebindings/{PEER_ROLE}")
        cp.api_request("DELETE", f"{rbac}/clusterroles/{PEER_ROLE}")
        cp.api_request("DELETE", f"/api/v1/namespaces/{PEER_NS}")
