"""manifest → operator → rendered config → running ``thv proxy`` → exchanged token at the backend.

The MCPExternalAuthConfig points at a real Keycloak; the operator renders it on the real
control plane (ConfigMap mode: ``runconfig.json``; flag mode: the Deployment's args); that
exact output configures ``thv proxy``, and the upstream verifies the exchanged token's
signature against Keycloak's JWKS and its audience.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from proxy_testlib import PROXY_CLIENT_ID, PROXY_CLIENT_SECRET, TARGET_AUDIENCE

from devcluster import ControlPlane
from thv.proxy import config_from_args, config_from_runconfig
from thvtest import manifests
from thvtest.harness import run_operator, wait_for

pytestmark = pytest.mark.keycloak
G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
SECRET_ENV = "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"


def _proxy_flags(args: list[str]) -> list[str]:
    out = []
    for arg in args:
        if not arg.startswith("--"):
            if arg == "run":
                continue
            break
        if arg.startswith("--token-exchange-"):
            out.append(arg)
    return out


@pytest.mark.parametrize("header", [None, "X-Upstream-Token"], ids=["replace", "custom"])
@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
def test_operator_rendered_config_exchanges_with_keycloak(
    control_plane: ControlPlane,
    namespace: str,
    operator_kubeconfig_path: Path,
    keycloak: Any,
    keycloak_roundtrip: Any,
    use_configmap: bool,
    header: str | None,
) -> None:
    cp, ns = control_plane, namespace
    te: dict[str, Any] = {
        "tokenUrl": keycloak.token_url,
        "clientId": PROXY_CLIENT_ID,
        "clientSecretRef": {"name": "kc", "key": "secret"},
        "audience": TARGET_AUDIENCE,
    }
    if header:
        te["externalTokenHeaderName"] = header
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=use_configmap):
        assert (
            cp.api_request(
                "POST",
                f"/api/v1/namespaces/{ns}/secrets",
                {"metadata": {"name": "kc"}, "stringData": {"secret": PROXY_CLIENT_SECRET}},
            )[0]
            == 201
        )
        assert (
            cp.api_request(
                "POST",
                f"{G}/{ns}/mcpexternalauthconfigs",
                manifests.extauth("kc", secret=None, **te),
            )[0]
            == 201
        )
        assert (
            cp.api_request(
                "POST",
                f"{G}/{ns}/mcpservers",
                manifests.mcpserver(
                    "srv",
                    external_auth="kc",
                    defaults=False,
                    image="example.invalid/mcp:1",
                    transport="streamable-http",
                    proxyPort=8080,
                    mcpPort=8080,
                ),
            )[0]
            == 201
        )
        env = {SECRET_ENV: PROXY_CLIENT_SECRET}  # what secretKeyRef gives the container
        if use_configmap:
            cm = wait_for(
                lambda: (
                    (r := cp.api_request("GET", f"/api/v1/namespaces/{ns}/configmaps/srv-runconfig"))[0]
                    == 200
                    and r[1]
                ),
                60,
                "runconfig ConfigMap",
            )
            config = config_from_runconfig(cm["data"]["runconfig.json"], env=env)
        else:
            dep = wait_for(
                lambda: (
                    (r := cp.api_request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/srv"))[0] == 200
                    and r[1]
                ),
                60,
                "Deployment",
            )
            container = dep["spec"]["template"]["spec"]["containers"][0]
            ref = next(e for e in container["env"] if e["name"] == SECRET_ENV)["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "kc", "key": "secret"}
            config = config_from_args(_proxy_flags(container["args"]), env=env)
    record = keycloak_roundtrip(config)
    assert record.verified is not None
    aud = record.verified["aud"]
    assert aud == TARGET_AUDIENCE or TARGET_AUDIENCE in aud
    if header:
        assert record.headers.get("authorization", "").startswith("Bearer ")  # original kept
