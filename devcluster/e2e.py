"""End-to-end helpers on the real node: the operator installed in-cluster by Helm, MCP calls
through a runner with extra headers (a ``traceparent``), conditions and Events, and the pod
states and logs a failure message needs.

Used by ``tests/e2e/test_phase8.py``; built on :mod:`devcluster.podkit` and
:mod:`devcluster.helm`.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from devcluster import ControlPlane
from devcluster.helm import Helm
from devcluster.paths import checkout
from devcluster.podkit import get, wait_for

GROUP = "toolhive.stacklok.dev"
G = f"/apis/{GROUP}/v1alpha1"
CRDS = ("mcpservers", "mcptoolconfigs", "mcpexternalauthconfigs")
RELEASE, OPERATOR_NS = "thv", "thv-system"


# -- the operator, in-cluster ----------------------------------------------------------------------
def helm_install(
    cp: ControlPlane,
    helm: Helm,
    image: str,
    *,
    use_configmap: bool,
    otel_endpoint: str | None = None,
    replicas: int = 1,
) -> float:
    """``helm install`` of ``helm/thv`` with the locally built ``image`` (operator and runner),
    ``operator.useConfigMap`` as given and, with ``otel_endpoint``, the chart's ``otel.endpoint``;
    then restarts the controller manager (its garbage collector learns the chart's CRDs only at
    start). Seconds until ``--wait`` returned."""
    repo, tag = image.rsplit(":", 1)
    t0 = time.monotonic()
    sets = [
        f"operator.image.repository={repo}",
        f"operator.image.tag={tag}",
        "operator.image.pullPolicy=Never",
        f"operator.runnerImage={image}",
        f"operator.replicas={replicas}",
        f"operator.useConfigMap={'true' if use_configmap else 'false'}",
    ]
    if otel_endpoint:
        sets.append(f"otel.endpoint={otel_endpoint}")
    args = ["install", RELEASE, str(checkout() / "helm" / "thv"), "--namespace", OPERATOR_NS]
    args += ["--create-namespace", "--wait", "--timeout", "240s"]
    for s in sets:
        args += ["--set", s]
    helm.run(*args, kubeconfig=cp.kubeconfig)
    took = time.monotonic() - t0
    cp.restart_controller_manager()
    return took


def crds_present(cp: ControlPlane) -> list[str]:
    body = get(cp, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions") or {}
    return sorted(c["metadata"]["name"] for c in body.get("items", []) if c["spec"]["group"] == GROUP)


def helm_uninstall(cp: ControlPlane, helm: Helm, *, delete_crds: bool = True) -> None:
    """``helm uninstall --wait`` and (Helm never deletes CRDs) the CRDs, until they are gone."""
    helm.run(
        "uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", kubeconfig=cp.kubeconfig, check=False
    )
    if delete_crds:
        for crd in CRDS:
            cp.api_request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}.{GROUP}")
        wait_for("the CRDs are gone", lambda: not crds_present(cp), timeout=120)


def release_namespaces(cp: ControlPlane, *namespaces: str, timeout: float = 90) -> None:
    """Delete ``namespaces`` while the operator still runs (it releases the finalizers of the
    MCPServers and configs in them) and wait until they are gone; whatever still holds a thv
    finalizer after ``timeout`` is released by hand, so that uninstalling the operator and
    deleting the CRDs cannot hang on it."""
    for ns in namespaces:
        cp.api_request("DELETE", f"/api/v1/namespaces/{ns}")

    def gone() -> bool:
        return all(get(cp, f"/api/v1/namespaces/{ns}") is None for ns in namespaces)

    try:
        wait_for("the namespaces are gone", gone, timeout=timeout)
    except AssertionError:
        for ns in namespaces:
            for plural in CRDS:
                for item in (get(cp, f"{G}/namespaces/{ns}/{plural}") or {}).get("items", []):
                    path = f"{G}/namespaces/{ns}/{plural}/{item['metadata']['name']}"
                    cp.api_request("PATCH", path, {"metadata": {"finalizers": None}})
        wait_for("the namespaces are gone", gone, timeout=timeout)


# -- objects ----------------------------------------------------------------------------------------
def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """The status condition of type ``kind`` (``{}`` when absent)."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def events_for(cp: ControlPlane, ns: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    """Events in ``ns`` about an object called ``name`` (optionally of one ``reason``)."""
    body = get(cp, f"/api/v1/namespaces/{ns}/events") or {}
    return [
        e
        for e in body.get("items", [])
        if (e.get("involvedObject") or {}).get("name") == name
        and (reason is None or e.get("reason") == reason)
    ]


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (not verified: only to compare what a server reports)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def audiences(claims_: Mapping[str, Any]) -> list[str]:
    aud = claims_.get("aud")
    return [str(a) for a in aud] if isinstance(aud, list) else ([str(aud)] if aud else [])


def ready_endpoints(cp: ControlPlane, ns: str, service: str) -> set[str]:
    """The ready addresses of a Service's EndpointSlices."""
    path = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=kubernetes.io/service-name%3D{service}"
    return {
        address
        for sl in (get(cp, path) or {}).get("items", [])
        for ep in sl.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready")
        for address in ep.get("addresses", [])
    }


def service_url(cp: ControlPlane, ns: str, service: str) -> str:
    """``http://<ClusterIP>:<port>`` of a Service, reachable from the host through kube-proxy."""
    svc = get(cp, f"/api/v1/namespaces/{ns}/services/{service}")
    assert svc is not None, f"no Service {ns}/{service}"
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


# -- MCP ------------------------------------------------------------------------------------------------
async def call_tool(
    url: str,
    tool: str,
    *,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
    arguments: dict[str, Any] | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Initialize a streamable-HTTP session at ``url`` (…/mcp) with the official MCP SDK client,
    sending ``headers`` (and the bearer ``token``) on every request; call ``tool``; its
    structured result (or the JSON of its text). Raises on a tool error; ``timeout`` bounds
    every HTTP request and the whole call."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    with anyio.fail_after(timeout):
        return await _call(url, tool, sent, arguments, timeout)


async def _call(
    url: str, tool: str, sent: dict[str, str], arguments: dict[str, Any] | None, timeout: float
) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(headers=sent, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        answer = await session.call_tool(tool, arguments or {})
        if answer.is_error:
            raise RuntimeError(f"tool {tool} answered an error: {answer.content}")
        data: Any = answer.structured_content
        if data is None:
            texts = [getattr(c, "text", "") for c in answer.content]
            data = json.loads(texts[0]) if texts else {}
        if isinstance(data, dict) and set(data) == {"result"} and isinstance(data["result"], dict):
            data = data["result"]
        return dict(data) if isinstance(data, dict) else {"result": data}


# -- failure messages -------------------------------------------------------------------------------
def _log(cp: ControlPlane, ns: str, pod: str, container: str, previous: bool) -> str:
    ctx = ssl.create_default_context(cafile=str(cp.ca_path))
    params = {"container": container, "tailLines": "40", "previous": "true" if previous else "false"}
    try:
        r = httpx.get(
            f"{cp.server}/api/v1/namespaces/{ns}/pods/{pod}/log",
            params=params,
            headers={"Authorization": f"Bearer {cp.admin_token}"},
            verify=ctx,
            timeout=10,
        )
    except httpx.HTTPError as exc:
        return f"(no log: {exc})"
    return r.text if r.status_code == 200 else f"(no log: {r.status_code})"


def diagnose(cp: ControlPlane, *namespaces: str) -> str:
    """Pods, their container states and last log lines (and the previous container's, after a
    restart), the namespaces' Warning Events: what a failure message needs. Never a Secret."""
    lines: list[str] = []
    for ns in namespaces:
        body = get(cp, f"/api/v1/namespaces/{ns}/pods") or {}
        for pod in body.get("items", []):
            name = pod["metadata"]["name"]
            lines.append(f"== pod {ns}/{name} phase={pod.get('status', {}).get('phase')}")
            for c in (pod.get("status") or {}).get("containerStatuses") or []:
                lines.append(
                    f"   container {c['name']}: ready={c.get('ready')} restarts={c.get('restartCount')}"
                )
                lines.append(f"   state={c.get('state')} last={c.get('lastState')}")
                lines.append("   --- log:\n" + _log(cp, ns, name, c["name"], False))
                if c.get("restartCount"):
                    lines.append("   --- previous log:\n" + _log(cp, ns, name, c["name"], True))
        events = get(cp, f"/api/v1/namespaces/{ns}/events") or {}
        for e in events.get("items", []):
            if e.get("type") == "Warning":
                obj = e.get("involvedObject") or {}
                lines.append(
                    f"   event {obj.get('kind')}/{obj.get('name')} {e.get('reason')}: {e.get('message')}"
                )
    return "\n".join(lines)


def wait_or_diagnose(
    cp: ControlPlane, namespaces: tuple[str, ...], what: str, check: Any, timeout: float
) -> Any:
    """:func:`~devcluster.podkit.wait_for`, failing with :func:`diagnose` of ``namespaces``."""
    try:
        return wait_for(what, check, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnose(cp, *namespaces)}") from None
