"""The MCPServer's status tells what actually runs, in real pods (issue "The runner", item 4).

Three MCPServers at once, thv's runner in flag mode, on the real node:

* ``good`` -- the demo MCP server over stdio: the moment the status says ``Running``, an MCP
  request through the runner's Service is served (the official MCP SDK client lists and calls);
* ``nopull`` -- an MCP server image that cannot be pulled: ``Failed``, reason
  ``ImagePullBackOff``, naming the MCP server pod, and a Warning Event;
* ``crash`` -- an MCP server that exits at start (an argument it does not know): ``Failed``,
  reason ``CrashLoopBackOff`` with the exit code, one Warning Event, and a status that the crash
  loop does not rewrite at every restart.

(A runner that refuses its configuration also exits with its one-line error in the termination
message, which the status quotes -- ``tests/unit/test_pod_health.py``; the operator refuses the
configurations it can check before any pod starts, so none reaches a pod here.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_runner_pods import diagnose, operator, wait_for

from devcluster import ControlPlane
from devcluster.mcpcall import CallResult, call_tool

pytestmark = pytest.mark.realnode

GROUP = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"


def _server(
    cp: ControlPlane, ns: str, name: str, image: str, env: list[dict[str, str]], args: list[str] | None = None
) -> None:
    status, body = cp.api_request(
        "POST",
        f"{GROUP}/{ns}/mcpservers",
        {
            "apiVersion": "toolhive.stacklok.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": name},
            "spec": {
                "image": image,
                "transport": "stdio",
                "proxyMode": "streamable-http",
                "env": env,
                **({"args": args} if args else {}),
                "podTemplateSpec": {"spec": {"containers": [{"name": "mcp", "imagePullPolicy": "Never"}]}},
            },
        },
    )
    assert status == 201, body


def _status(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    status, body = cp.api_request("GET", f"{GROUP}/{ns}/mcpservers/{name}")
    assert status == 200, body
    st = body.get("status") or {}
    assert isinstance(st, dict)
    return st


def _ready_condition(st: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})


def _warnings(cp: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    _, events = cp.api_request("GET", f"/api/v1/namespaces/{ns}/events")
    return [
        e
        for e in (events.get("items", []) if isinstance(events, dict) else [])
        if e.get("type") == "Warning"
        and e.get("involvedObject", {}).get("kind") == "MCPServer"
        and e.get("involvedObject", {}).get("name") == name
    ]


def _failed_with(cp: ControlPlane, ns: str, name: str, reason: str) -> dict[str, Any] | None:
    st = _status(cp, ns, name)
    if st.get("phase") == "Failed" and _ready_condition(st).get("reason") == reason:
        return st
    return None


def test_status_comes_from_the_runner_pod_and_the_mcp_server_pod(
    real_cluster: ControlPlane,
    real_namespace: str,
    pod_images: dict[str, str],
    real_operator_kubeconfig: Path,
) -> None:
    cp, ns = real_cluster, real_namespace
    no_auth = [{"name": "DEMO_MCP_NO_AUTH", "value": "1"}]
    with operator(real_operator_kubeconfig, ns, use_configmap=False, runner_image=pod_images["thv"]):
        started = time.monotonic()
        _server(cp, ns, "good", pod_images["demo-mcp"], no_auth)
        _server(cp, ns, "nopull", "localhost/thv-no-such-image:0", no_auth)
        _server(cp, ns, "crash", pod_images["demo-mcp"], no_auth, ["--no-such-flag"])
        try:
            # Running means an MCP request can be served: call as soon as the status says so.
            # The runner pod and the MCP server pod are Ready then; the one thing the operator
            # does not wait for is kube-proxy programming the Service's new endpoint on the node
            # (milliseconds when idle, seconds on a loaded 2-core machine): allowed 20 s.
            wait_for(lambda: _status(cp, ns, "good").get("phase") == "Running", 180, "good Running")
            running_after = time.monotonic() - started
            _, svc = cp.api_request("GET", f"/api/v1/namespaces/{ns}/services/mcp-good-proxy")
            url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/mcp"
            t0 = time.monotonic()

            def served() -> CallResult | None:
                try:
                    return anyio.run(lambda: call_tool(url, "echo", arguments={"message": "hello"}))
                except Exception:
                    return None

            result = wait_for(served, 20, "the first call after Running")
            assert "echo" in result.tools and not result.is_error, result.result
            print(
                f"\ngood: Running {running_after:.1f} s after apply; "
                f"the first call was served {time.monotonic() - t0:.1f} s after that"
            )

            st = wait_for(lambda: _failed_with(cp, ns, "nopull", "ImagePullBackOff"), 180, "nopull Failed")
            assert st["message"] == "MCP server pod nopull-0: container mcp cannot pull its image", st
            wait_for(
                lambda: any(e["reason"] == "ImagePullBackOff" for e in _warnings(cp, ns, "nopull")),
                30,
                "a Warning Event for nopull",
            )

            st = wait_for(lambda: _failed_with(cp, ns, "crash", "CrashLoopBackOff"), 180, "crash Failed")
            assert st["message"].startswith(
                "MCP server pod crash-0: container mcp keeps exiting (exit code 2"
            ), st
            wait_for(
                lambda: any(e["reason"] == "CrashLoopBackOff" for e in _warnings(cp, ns, "crash")),
                30,
                "a Warning Event for crash",
            )
            # folded reasons and stable messages: the crash loop does not rewrite the status
            first = _status(cp, ns, "crash")
            time.sleep(25)  # two more restarts' worth of back-off
            assert _status(cp, ns, "crash") == first
            assert len([e for e in _warnings(cp, ns, "crash") if e["reason"] == "CrashLoopBackOff"]) == 1
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnose(cp, ns)}") from None
