"""Issue 15 in real pods: the operator renders an MCPServer with an MCPToolConfig, inline Cedar
policies, audit and incoming OIDC (with a resource URL); thv's runner enforces them in front of the
demo MCP server (official SDK) — flag mode over streamable-HTTP, ConfigMap mode over stdio served
as legacy SSE. Seen from outside with the official MCP SDK client and a Keycloak user token: the
discovery document, ``resource_metadata`` on the 401, the filtered and renamed tools, a denied
call, a filtered call; the audit events are read from the runner pod's log."""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pod_fixtures import pod_images, pod_keycloak, real_operator_kubeconfig
from proxy_testlib import KeycloakServer
from test_runner_pods import (
    NAME,
    _apply,
    create_server,
    diagnose,
    operator,
    runner_url,
    wait_for,
    wait_ready,
)

from devcluster import ControlPlane
from devcluster.e2e import claims
from devcluster.jaeger import Jaeger, get_trace

__all__ = ["pod_images", "pod_keycloak", "real_operator_kubeconfig"]  # fixtures, re-exported

RESOURCE = "https://mcp.example.test/mcp"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def pod_jaeger(real_cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """Jaeger with its OTLP/HTTP receiver on the node's host address, so pods can export to it."""
    node = real_cluster.node
    assert node is not None
    jaeger = Jaeger(
        base_dir=tmp_path_factory.mktemp("mw-jaeger"), otlp_host=node.host_ip, otlp_grpc=False, quiet=True
    ).start()
    try:
        yield jaeger
    finally:
        jaeger.stop()


POLICIES = [
    # policies name the real tool: the tool-call filter renames before authorization (upstream order)
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"whoami") '
    'when { principal has claim_preferred_username && principal.claim_preferred_username == "nobody" };',
]


def _add_tool_config(cp: ControlPlane, ns: str) -> None:
    _apply(
        cp,
        f"/apis/toolhive.stacklok.dev/v1alpha1/namespaces/{ns}/mcptoolconfigs",
        {
            "apiVersion": "toolhive.stacklok.dev/v1alpha1",
            "kind": "MCPToolConfig",
            "metadata": {"name": "tc"},
            "spec": {
                "toolsFilter": ["say", "whoami"],
                "toolsOverride": {"echo": {"name": "say", "description": "Say it."}},
            },
        },
    )


def _create_server(
    cp: ControlPlane,
    ns: str,
    kc: KeycloakServer,
    image: str,
    transport: str,
    proxy_mode: str | None,
    otlp_endpoint: str,
    service: str,
) -> None:
    """The runner tests' MCPServer (token exchange to the demo server) plus the middleware, created
    at once (a later patch would roll the runner mid-test)."""
    original = _apply

    def apply(cp: ControlPlane, path: str, body: dict[str, Any]) -> None:
        if body.get("kind") == "MCPServer":
            body["spec"].update(
                {
                    "toolConfigRef": {"name": "tc"},
                    "oidcConfig": {
                        "type": "inline",
                        "inline": {"issuer": kc.issuer, "audience": "mcp-proxy", "jwksUrl": kc.jwks_url},
                        "resourceUrl": RESOURCE,
                    },
                    "authzConfig": {"type": "inline", "inline": {"policies": POLICIES}},
                    "audit": {"enabled": True},
                    "telemetry": {
                        "openTelemetry": {
                            "enabled": True,
                            "endpoint": otlp_endpoint,
                            "insecure": True,
                            "serviceName": service,
                            "tracing": {"enabled": True, "samplingRate": "1.0"},
                        }
                    },
                }
            )
        original(cp, path, body)

    import test_runner_pods

    test_runner_pods._apply = apply  # create_server's only way to the API server
    try:
        create_server(
            cp, ns, kc, image=image, transport=transport, proxy_mode=proxy_mode, custom_header=False
        )
    finally:
        test_runner_pods._apply = original


async def _observe(url: str, token: str, mode: str, trace_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{PARENT_SPAN}-01"}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    transport = (
        sse_client(f"{url}/sse", headers=headers)
        if mode == "sse"
        else streamable_http_client(f"{url}/mcp", http_client=http)
    )
    out: dict[str, Any] = {}
    async with http, transport as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["tools"] = {t.name: t.description for t in (await session.list_tools()).tools}
        said = await session.call_tool("say", {"message": "hi"})
        out["said"] = json.dumps(said.model_dump(mode="json"))
        for tool, args in (("whoami", {}), ("echo", {"message": "x"})):
            try:
                await session.call_tool(tool, args)
                out[tool] = "allowed"
            except MCPError as exc:
                out[tool] = (exc.error.code, exc.error.message)
    return out


def _runner_log(cp: ControlPlane, ns: str) -> str:
    _, pods = cp.api_request("GET", f"/api/v1/namespaces/{ns}/pods")
    runner = [
        p["metadata"]["name"]
        for p in pods.get("items", [])
        if p["metadata"]["name"].startswith(f"{NAME}-") and p["metadata"]["name"] != f"{NAME}-0"
    ]
    assert runner, pods
    logs = []
    for pod in runner:
        req = urllib.request.Request(
            f"{cp.server}/api/v1/namespaces/{ns}/pods/{pod}/log?container=toolhive",
            headers={"Authorization": f"Bearer {cp.admin_token}"},
        )
        with urllib.request.urlopen(
            req, timeout=20, context=ssl.create_default_context(cafile=str(cp.ca_path))
        ) as r:
            logs.append(r.read().decode(errors="replace"))
    return "\n".join(logs)


CASES = [
    pytest.param(False, "streamable-http", None, "streamable-http", id="flags-streamable-http"),
    pytest.param(True, "stdio", "sse", "sse", id="configmap-stdio-as-sse"),
]


@pytest.mark.parametrize(("use_configmap", "transport", "proxy_mode", "mode"), CASES)
def test_middleware_in_pods(
    real_cluster: ControlPlane,
    real_namespace: str,
    pod_keycloak: KeycloakServer,
    pod_images: dict[str, str],
    real_operator_kubeconfig: Any,
    pod_jaeger: Jaeger,
    use_configmap: bool,
    transport: str,
    proxy_mode: str | None,
    mode: str,
) -> None:
    cp, ns, kc = real_cluster, real_namespace, pod_keycloak
    with operator(real_operator_kubeconfig, ns, use_configmap=use_configmap, runner_image=pod_images["thv"]):
        _add_tool_config(cp, ns)
        service = f"mw-pods-{mode}"
        _create_server(
            cp, ns, kc, pod_images["demo-mcp"], transport, proxy_mode, pod_jaeger.otlp_http_endpoint, service
        )
        wait_ready(cp, ns)
        url = runner_url(cp, ns)
        token = kc.password_token()
        trace_id = uuid.uuid4().hex

        # discovery (no token) and resource_metadata on the 401
        def discovered() -> bool:  # the patched server may still be rolling out
            try:
                r = httpx.get(f"{url}/.well-known/oauth-protected-resource/mcp", timeout=10)
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.json().get("authorization_servers") == [kc.issuer]

        wait_for(discovered, 120, "the runner (with the middleware) serving the discovery document")
        doc = httpx.get(f"{url}/.well-known/oauth-protected-resource", timeout=10).json()
        assert doc["resource"] == RESOURCE and doc["bearer_methods_supported"] == ["header"]
        denied = httpx.post(f"{url}/{'sse' if mode == 'sse' else 'mcp'}", json={}, timeout=10)
        assert denied.status_code == 401
        assert (
            'resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp"'
            in denied.headers["www-authenticate"]
        )

        try:
            seen = anyio.run(_observe, url, token, mode, trace_id)
        except Exception as exc:
            raise AssertionError(f"{exc!r}\n{diagnose(cp, ns)}") from None
        assert seen["tools"] == {"say": "Say it."}, seen  # whoami: filtered by policy; echo: renamed
        assert "hi" in seen["said"]
        assert seen["whoami"] == (403, "Unauthorized")
        assert seen["echo"] == (-32602, "tool not found")

        log = _runner_log(cp, ns)
        events = [json.loads(line) for line in log.splitlines() if '"audit_event"' in line]
        sub = claims(token)["sub"]
        calls = [
            (e["target"].get("name"), e["outcome"], e["subjects"].get("user_id"))
            for e in events
            if e["type"] == "mcp_tool_call"
        ]
        assert ("echo", "success", sub) in calls, calls
        assert ("whoami", "denied", sub) in calls, calls
        assert ("echo", "failure", sub) in calls, calls  # the call to the real name, refused
        assert token not in log

        # spans per MCP operation, in Jaeger, continuing the caller's traceparent
        def traced() -> dict[str, Any] | None:
            trace = get_trace(pod_jaeger.query_url, trace_id)
            names = {sp["operationName"] for sp in (trace or {}).get("spans", [])}
            return trace if {"tools/call echo", "tools/call whoami"} <= names else None

        trace = wait_for(traced, 60, "the runner's MCP spans in Jaeger")
        spans = {sp["operationName"]: sp for sp in trace["spans"]}
        echo = spans["tools/call echo"]
        tags = {t["key"]: t["value"] for t in echo["tags"]}
        assert tags["mcp.method.name"] == "tools/call" and tags["gen_ai.tool.name"] == "echo"
        assert [r["spanID"] for r in echo["references"]] == [PARENT_SPAN]
        whoami = {t["key"]: t["value"] for t in spans["tools/call whoami"]["tags"]}
        assert whoami["thv.mcp.outcome"] == "denied"
        assert trace["processes"][echo["processID"]]["serviceName"] == service
