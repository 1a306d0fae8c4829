"""``thv render`` and the operator resolve a server the same way (:mod:`thv.render.resolve`):
every example, the chainsaw fixtures and a set of awkward manifests are rendered both ways —
offline from the files, and through the operator's gatherer from a Store and API reads holding
the same objects — and the whole objects (and every reason a server cannot be rendered) must be
equal, not a subset of fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import yaml

from thv.render.manifests import render_docs
from thv.render.settings import OperatorSettings
from thv.sources.kinds import BY_NAME
from thv.subscribers.context import Context
from thv.subscribers.gather import resolve_server
from thvtest.render import ManifestReads, operator_render

ROOT = Path(__file__).resolve().parents[2]
NS = "default"
EXTRA = """
apiVersion: v1
kind: ConfigMap
metadata: {name: oidc-cm}
data: {issuer: https://issuer.example.com, audience: mcp}
---
apiVersion: v1
kind: Secret
metadata: {name: te-secret}
stringData: {wrong-key: x}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPExternalAuthConfig
metadata: {name: te-missing-key}
spec:
  type: tokenExchange
  tokenExchange: {tokenUrl: https://idp/token, audience: aud, clientSecretRef: {name: te-secret, key: k}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: oidc-from-configmap, annotations: {mcpserver.toolhive.stacklok.dev/restarted-at: "2026-01-01T00:00:00Z"}}
spec: {image: img, oidcConfig: {type: configMap, configMap: {name: oidc-cm}}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: oidc-configmap-missing}
spec: {image: img, oidcConfig: {type: configMap, configMap: {name: nowhere}}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: secret-key-missing}
spec: {image: img, externalAuthConfigRef: {name: te-missing-key}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: config-missing}
spec: {image: img, toolConfigRef: {name: nowhere}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: bad-ref-name}
spec: {image: img, externalAuthConfigRef: {name: ../x}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: profile-from-configmap}
spec: {image: img, permissionProfile: {type: configmap, name: oidc-cm, key: profile.json}}
"""


def _sets() -> dict[str, list[dict[str, Any]]]:
    sets: dict[str, list[dict[str, Any]]] = {}
    paths = [
        *sorted((ROOT / "examples").glob("*.yaml")),
        *sorted((ROOT / "tests" / "fixtures").glob("chainsaw-*.yaml")),
    ]
    for path in paths:
        loaded = list(yaml.safe_load_all(path.read_text()))
        if len(loaded) == 1 and "scenarios" in loaded[0]:  # chainsaw-transport-rbac: one server per scenario
            loaded = list(loaded[0]["scenarios"].values())
        sets[path.name] = [d for d in loaded if isinstance(d, dict) and "kind" in d]
    sets["awkward"] = [d for d in yaml.safe_load_all(EXTRA) if d]
    return sets


SETS = _sets()


@pytest.mark.parametrize("use_configmap", [False, True], ids=["flags", "configmap"])
@pytest.mark.parametrize("name", sorted(SETS))
def test_thv_render_and_the_operator_agree_on_whole_objects(name: str, use_configmap: bool) -> None:
    docs = SETS[name]
    settings = OperatorSettings(use_configmap=use_configmap)
    offline, offline_errors = render_docs(docs, settings, NS)
    operator, operator_errors = operator_render(docs, settings, NS)
    assert offline == operator
    assert offline_errors == operator_errors
    if any(d["kind"] == "MCPServer" for d in docs):
        assert offline or offline_errors


def test_the_awkward_set_exercises_both_outcomes() -> None:
    offline, errors = render_docs(SETS["awkward"], OperatorSettings(), NS)
    reasons = sorted(e.split(": ")[1] for e in errors)
    assert reasons == [
        "ClientSecretKeyMissing",
        "ExternalAuthConfigNotFound",
        "InvalidPermissionProfile",  # oidc-cm has no key profile.json
        "OIDCConfigMapNotFound",
        "ToolConfigNotFound",
    ]
    deployments = [b for b in offline if b["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"oidc-from-configmap"}
    restarted = next(d for d in deployments if d["metadata"]["name"] == "oidc-from-configmap")
    annotations = restarted["spec"]["template"]["metadata"]["annotations"]
    assert annotations["mcpserver.toolhive.stacklok.dev/restarted-at"] == "2026-01-01T00:00:00Z"


def test_each_server_event_renders_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two renderers and the status writer of one event share one resolution; a changed
    input (here: the server's resourceVersion) renders again."""
    from thv.render.desired import render as real

    calls: list[str] = []

    def counting(server: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(server.metadata.name)
        return real(server, *args, **kwargs)

    monkeypatch.setattr("thv.render.resolve.render", counting)

    async def publish(_: object) -> None:
        return None

    docs = SETS["chainsaw-external-auth.yaml"]
    ctx = Context(ManifestReads(docs, NS), OperatorSettings(), publish)  # type: ignore[arg-type]
    for doc in docs:
        kind = BY_NAME.get(doc["kind"])
        if kind is not None and kind.route.value in ("server", "config"):
            meta = {**doc["metadata"], "resourceVersion": "1"}  # the fixture names its namespace
            ctx.stores.of(kind.name).upsert(msgspec.convert({**doc, "metadata": meta}, kind.type))
    (key,) = ctx.stores.servers.keys()

    async def three_subscribers() -> None:
        for _ in range(3):
            await resolve_server(ctx, key)

    anyio.run(three_subscribers)
    assert len(calls) == 1
    server = ctx.stores.servers.get(key)
    assert server is not None
    ctx.stores.servers.upsert(
        msgspec.structs.replace(
            server, metadata=msgspec.structs.replace(server.metadata, resource_version="2")
        )
    )
    anyio.run(three_subscribers)
    assert len(calls) == 2
