"""The generated CRDs on the real API server: valid manifests admitted, invalid ones rejected
with a message that names the problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from devcluster import ControlPlane
from thvtest import manifests

G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
TE = {
    "tokenUrl": "https://idp.example.com/token",
    "clientId": "c",
    "audience": "aud",
    "clientSecretRef": {"name": "s", "key": "k"},
}


def ext(**te: Any) -> dict[str, Any]:
    return manifests.extauth("x", secret=None, **{**TE, **te})


def srv(**spec: Any) -> dict[str, Any]:
    """A minimal MCPServer: only the image (none of the kit's defaults)."""
    return manifests.mcpserver("x", defaults=False, **{"image": "example.invalid/mcp:1", **spec})


VALID = [
    (
        "extauth-full",
        "mcpexternalauthconfigs",
        ext(scopes=["a"], externalTokenHeaderName="X-Up", subjectTokenType="access_token"),
    ),
    ("extauth-public-client", "mcpexternalauthconfigs", ext(clientId=None, clientSecretRef=None)),
    ("server-minimal", "mcpservers", srv()),
    ("server-ref", "mcpservers", srv(externalAuthConfigRef={"name": "a"}, toolConfigRef={"name": "t"})),
    ("toolconfig", "mcptoolconfigs", manifests.toolconfig("x", toolsFilter=["a"])),
]

INVALID = [
    (
        "no tokenExchange",
        "mcpexternalauthconfigs",
        {**ext(), "spec": {"type": "tokenExchange"}},
        "tokenExchange",
    ),
    ("bad type", "mcpexternalauthconfigs", {**ext(), "spec": {"type": "basic", "tokenExchange": TE}}, "type"),
    ("no audience", "mcpexternalauthconfigs", ext(audience=None), "audience"),
    ("empty audience", "mcpexternalauthconfigs", ext(audience=""), "audience"),
    ("no tokenUrl", "mcpexternalauthconfigs", ext(tokenUrl=None), "tokenUrl"),
    ("bad subjectTokenType", "mcpexternalauthconfigs", ext(subjectTokenType="saml"), "subjectTokenType"),
    ("secret ref without key", "mcpexternalauthconfigs", ext(clientSecretRef={"name": "s"}), "key"),
    (
        "header with space",
        "mcpexternalauthconfigs",
        ext(externalTokenHeaderName="X Up"),
        "externalTokenHeaderName",
    ),
    ("server without image", "mcpservers", {**srv(), "spec": {"transport": "stdio"}}, "image"),
    ("bad transport", "mcpservers", srv(transport="websocket"), "transport"),
    ("port out of range", "mcpservers", srv(proxyPort=70000), "proxyPort"),
    ("ref without name", "mcpservers", srv(externalAuthConfigRef={}), "name"),
    ("oidc configMap missing", "mcpservers", srv(oidcConfig={"type": "configMap"}), "configMap"),
    (
        "authz inline empty policies",
        "mcpservers",
        srv(authzConfig={"type": "inline", "inline": {"policies": []}}),
        "policies",
    ),
]


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane, operator_kubeconfig_path: Path) -> ControlPlane:
    return control_plane  # operator_kubeconfig_path installs the CRDs


def test_valid_manifests_are_admitted(crds: ControlPlane, namespace: str) -> None:
    for i, (label, plural, body) in enumerate(VALID):
        obj = copy.deepcopy(body)
        obj["metadata"]["name"] = f"v{i}"
        status, out = crds.api_request("POST", f"{G}/{namespace}/{plural}", obj)
        assert status == 201, (label, out)


@pytest.mark.parametrize(("label", "plural", "body", "mentions"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_manifests_are_rejected(
    crds: ControlPlane, namespace: str, label: str, plural: str, body: dict[str, Any], mentions: str
) -> None:
    status, out = crds.api_request("POST", f"{G}/{namespace}/{plural}", copy.deepcopy(body))
    assert status == 422, (label, status, out)
    assert mentions in out["message"], out["message"]
