"""Pods on a real node, for tests and the demo: create, wait, logs, exec and attach through the apiserver.

``exec``/``attach`` speak the apiserver's WebSocket streaming protocol (``v4.channel.k8s.io``:
each binary frame starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 status) through
httpx-ws, as a client such as kubectl does — so a test proves the apiserver → kubelet →
containerd streaming path, not a shortcut on the host.
"""

from __future__ import annotations

import json
import queue
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from httpx_ws import WebSocketDisconnect, WebSocketSession, connect_ws

from devcluster import ControlPlane

STREAM_PROTOCOL = "v4.channel.k8s.io"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f}s")
        time.sleep(interval)


def create(cp: ControlPlane, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    status, body = cp.api_request("POST", path, obj)
    assert status == 201, body
    assert isinstance(body, dict)
    return body


def get(cp: ControlPlane, path: str) -> dict[str, Any] | None:
    status, body = cp.api_request("GET", path)
    return body if status == 200 and isinstance(body, dict) else None


def pods(cp: ControlPlane, ns: str, selector: str) -> list[dict[str, Any]]:
    body = get(cp, f"/api/v1/namespaces/{ns}/pods?{urlencode({'labelSelector': selector})}") or {}
    items: list[dict[str, Any]] = body.get("items", [])
    return items


def ready(pod: dict[str, Any]) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def ready_pod(cp: ControlPlane, ns: str, selector: str, timeout: float = 120.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        live = [p for p in pods(cp, ns, selector) if ready(p) and not p["metadata"].get("deletionTimestamp")]
        return live[0] if len(live) == 1 else None

    pod: dict[str, Any] = wait_for(f"one Ready pod {selector} in {ns}", check, timeout)
    return pod


def python_pod_spec(
    image: str, code: str, *, stdin: bool = False, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """A pod spec running ``python3 -u -c code`` from ``image`` on the real node."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-u", "-c", code],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    if stdin:
        container["stdin"] = True
    return {
        "nodeSelector": {"thv.dev/node": "real"},
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
    }


def _ws_client(cp: ControlPlane) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(cp.ca_path))
    return httpx.Client(
        base_url=cp.server, verify=ctx, headers={"Authorization": f"Bearer {cp.admin_token}"}, timeout=30
    )


def logs(cp: ControlPlane, ns: str, pod: str) -> str:
    """The pod's log, read through the apiserver (``pods/log``, served by the kubelet)."""
    with _ws_client(cp) as client:
        r = client.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log")
        return r.text if r.status_code == 200 else ""


def _stream(
    cp: ControlPlane,
    path: str,
    params: list[tuple[str, str]],
    send: bytes | None,
    until: Callable[[bytes], bool],
) -> tuple[bytes, bytes, dict[str, Any] | None]:
    with _ws_client(cp) as client:
        ws: WebSocketSession
        with connect_ws(f"{path}?{urlencode(params)}", client, subprotocols=[STREAM_PROTOCOL]) as ws:
            return _pump(ws, send, until)


def _pump(
    ws: WebSocketSession, send: bytes | None, until: Callable[[bytes], bool]
) -> tuple[bytes, bytes, dict[str, Any] | None]:
    out, err = b"", b""
    status: dict[str, Any] | None = None
    if send is not None:
        ws.send_bytes(b"\x00" + send)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            frame = ws.receive_bytes(timeout=max(0.1, deadline - time.monotonic()))
        except (WebSocketDisconnect, queue.Empty):
            break
        if not frame:
            continue
        channel, data = frame[0], frame[1:]
        if channel == 1:
            out += data
        elif channel == 2:
            err += data
        elif channel == 3 and data:
            status = json.loads(data)
            break
        if until(out):
            break
    return out, err, status


def exec_in(
    cp: ControlPlane, ns: str, pod: str, command: list[str]
) -> tuple[str, str, dict[str, Any] | None]:
    """Run ``command`` in the pod through ``pods/exec``; (stdout, stderr, final status)."""
    params = [("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")]
    out, err, status = _stream(cp, f"/api/v1/namespaces/{ns}/pods/{pod}/exec", params, None, lambda _: False)
    return out.decode(), err.decode(), status


def attach_to(cp: ControlPlane, ns: str, pod: str, send: bytes, expect: bytes) -> bytes:
    """Attach to the pod's main process (``pods/attach``), write ``send`` to its stdin, read its
    stdout until ``expect`` appears."""
    params = [("container", "main"), ("stdin", "true"), ("stdout", "true"), ("stderr", "false")]
    out, _, _ = _stream(cp, f"/api/v1/namespaces/{ns}/pods/{pod}/attach", params, send, lambda o: expect in o)
    return out
