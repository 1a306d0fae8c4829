"""Smoke tests on the real node (issue 12, item 4): pods really run from locally built images.

One module-scoped namespace holds an HTTP server Deployment behind a Service and a client pod;
each test checks one path a later end-to-end test depends on: logs through the API, Service
ClusterIP (kube-proxy) and DNS (CoreDNS), ``pods/exec`` and ``pods/attach`` through the
apiserver, a Deployment rollout, a pod reaching a server on the host, the kubelet restarting a
killed container.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devcluster import ControlPlane
from devcluster.node import NODE_IP, NODE_NAME
from devcluster.podkit import (
    attach_to,
    create,
    exec_in,
    get,
    logs,
    pods,
    python_pod_spec,
    ready,
    ready_pod,
    wait_for,
)

SERVER = """
import http.server, os, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {os.environ['HOSTNAME']} version {os.environ.get('VERSION', '1')}".encode()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
print('serving on 8080', flush=True)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(('', 8080), H).serve_forever()
"""
SLEEPER = "import time\nprint('client up', flush=True)\nwhile True: time.sleep(3600)"
UPPER = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)"
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


@pytest.fixture(scope="module")
def image(real_cluster: ControlPlane) -> str:
    """The demo MCP server's image: Debian's Python 3.11, used here as a plain Python image."""
    return real_cluster.node.load("demo-mcp")


@pytest.fixture(scope="module")
def ns(real_cluster: ControlPlane, image: str) -> Iterator[str]:
    cp = real_cluster
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    create(cp, "/api/v1/namespaces", {"metadata": {"name": name}})
    wait_for("default ServiceAccount", lambda: get(cp, f"/api/v1/namespaces/{name}/serviceaccounts/default"))
    labels = {"app": "echo"}
    create(
        cp,
        f"/apis/apps/v1/namespaces/{name}/deployments",
        {
            "metadata": {"name": "echo"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        **python_pod_spec(image, SERVER),
                        "containers": [
                            {
                                **python_pod_spec(image, SERVER)["containers"][0],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                            }
                        ],
                    },
                },
            },
        },
    )
    create(
        cp,
        f"/api/v1/namespaces/{name}/services",
        {
            "metadata": {"name": "echo"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    for pod_name, code, stdin in (("client", SLEEPER, False), ("upper", UPPER, True)):
        create(
            cp,
            f"/api/v1/namespaces/{name}/pods",
            {
                "metadata": {"name": pod_name, "labels": {"app": pod_name}},
                "spec": python_pod_spec(image, code, stdin=stdin),
            },
        )
    yield name
    cp.api_request("DELETE", f"/api/v1/namespaces/{name}")


def _fetch(cp: ControlPlane, ns: str, url: str, timeout: float = 30.0) -> str:
    """GET ``url`` from the client pod (retried until kube-proxy and CoreDNS have caught up
    with a new Service: they program it within a few seconds)."""
    ready_pod(cp, ns, "app=client")
    last: tuple[str, str, object] = ("", "", None)

    def attempt() -> str | None:
        nonlocal last
        out, err, status = exec_in(cp, ns, "client", ["python3", "-c", FETCH, url])
        last = (out, err[-500:], status)
        return out if status is not None and status.get("status") == "Success" else None

    try:
        got: str = wait_for(f"GET {url} from a pod", attempt, timeout, interval=1.0)
    except AssertionError as e:
        raise AssertionError(f"{e}; last attempt: {last}") from None
    return got


def test_a_pod_from_a_locally_built_image_runs_and_its_logs_are_read(
    real_cluster: ControlPlane, ns: str
) -> None:
    pod = ready_pod(real_cluster, ns, "app=echo")
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["status"]["podIP"].startswith("10.244.0.")
    name = pod["metadata"]["name"]
    wait_for("server log", lambda: "serving on 8080" in logs(real_cluster, ns, name))


def test_service_clusterip_and_dns_name_reach_the_pod(real_cluster: ControlPlane, ns: str) -> None:
    ready_pod(real_cluster, ns, "app=echo")
    svc = get(real_cluster, f"/api/v1/namespaces/{ns}/services/echo")
    assert svc is not None
    ip = svc["spec"]["clusterIP"]
    assert _fetch(real_cluster, ns, f"http://{ip}/").startswith("hello from echo-")
    assert _fetch(real_cluster, ns, f"http://echo.{ns}.svc.cluster.local/").startswith("hello from echo-")


def test_pods_reach_the_apiserver_through_the_kubernetes_service(real_cluster: ControlPlane, ns: str) -> None:
    code = (
        "import ssl, urllib.request, urllib.error\n"
        "ctx = ssl.create_default_context(cafile='/var/run/secrets/kubernetes.io/serviceaccount/ca.crt')\n"
        "tok = open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()\n"
        "req = urllib.request.Request('https://kubernetes.default.svc/version', headers={'Authorization': 'Bearer ' + tok})\n"
        "print(urllib.request.urlopen(req, context=ctx, timeout=5).read().decode())"
    )
    ready_pod(real_cluster, ns, "app=client")
    out, err, status = exec_in(real_cluster, ns, "client", ["python3", "-c", code])
    assert '"gitVersion": "v1.36.3"' in out, (out, err, status)


def test_exec_and_attach_work_through_the_apiserver(real_cluster: ControlPlane, ns: str) -> None:
    ready_pod(real_cluster, ns, "app=client")
    out, _, status = exec_in(real_cluster, ns, "client", ["python3", "-c", "print('exec works')"])
    assert out.strip() == "exec works" and status is not None and status["status"] == "Success"
    ready_pod(real_cluster, ns, "app=upper")
    got = attach_to(real_cluster, ns, "upper", b"stdio bridge\n", b"STDIO BRIDGE")
    assert b"STDIO BRIDGE" in got


def test_a_deployment_rolls_out_a_new_template(real_cluster: ControlPlane, ns: str) -> None:
    old = ready_pod(real_cluster, ns, "app=echo")
    dep = get(real_cluster, f"/apis/apps/v1/namespaces/{ns}/deployments/echo")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": "2"}]
    status, body = real_cluster.api_request("PUT", f"/apis/apps/v1/namespaces/{ns}/deployments/echo", dep)
    assert status == 200, body

    def rolled() -> dict[str, Any] | None:
        live = [p for p in pods(real_cluster, ns, "app=echo") if not p["metadata"].get("deletionTimestamp")]
        new = [p for p in live if p["metadata"]["name"] != old["metadata"]["name"] and ready(p)]
        return new[0] if len(live) == 1 and new else None

    wait_for("the new pod is the only one", rolled)
    wait_for(
        "the Service serves the new version",
        lambda: (
            _fetch(real_cluster, ns, f"http://echo.{ns}.svc.cluster.local/").strip().endswith("version 2")
        ),
        timeout=60,
    )


def test_a_pod_reaches_a_server_on_the_host(real_cluster: ControlPlane, ns: str) -> None:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((NODE_IP, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert _fetch(real_cluster, ns, f"http://{NODE_IP}:{port}/") == "hello from the host\n"
    finally:
        server.shutdown()
        server.server_close()


def test_a_killed_container_is_restarted_by_the_kubelet(real_cluster: ControlPlane, ns: str) -> None:
    pod = ready_pod(real_cluster, ns, "app=client")
    name = pod["metadata"]["name"]
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    before = int(pod["status"]["containerStatuses"][0]["restartCount"])
    real_cluster.node.ctr("tasks", "kill", "--signal", "SIGKILL", cid)
    t0 = time.monotonic()

    def restarted() -> bool:
        p = get(real_cluster, f"/api/v1/namespaces/{ns}/pods/{name}")
        if p is None:
            return False
        st = p["status"]["containerStatuses"][0]
        return int(st["restartCount"]) > before and ready(p)

    wait_for("restartCount grows and the pod is Ready again", restarted, timeout=90)
    print(f"container restarted and Ready in {time.monotonic() - t0:.1f}s")
