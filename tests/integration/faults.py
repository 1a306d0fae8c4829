"""Fault-injection toolkit: the operator as a real process, a seeded churn of API writes, and a
convergence check against a fresh offline render.

- :class:`OperatorProcess` runs ``python -m thv operator run`` as the chart's ServiceAccount, so
  it can be SIGKILLed and restarted like a Pod.
- :class:`Churn` drives a reproducible sequence of writes (create/update/delete MCPServers,
  edit MCPExternalAuthConfigs and MCPToolConfigs) from a worker thread, retrying through
  apiserver outages, so the main thread is free to inject faults at a chosen point.
- :func:`converged` compares the cluster with what ``thv render`` computes from the cluster's
  current MCPServers and configs: every desired object exists with the desired fields, the
  servers' hash annotations and the configs' status hashes are current, and no object owned by
  an MCPServer is left over (orphaned or duplicated).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from devcluster import ControlPlane
from thv.api.crds import MCPExternalAuthConfig, MCPToolConfig
from thv.hashing import config_hash
from thv.operator.offline import project, unified_diff
from thv.render.manifests import render_docs
from thv.render.names import ANNOTATION_EXTAUTH_HASH, ANNOTATION_TOOLCONFIG_HASH
from thv.render.settings import OperatorSettings
from thv.writers.diff import is_subset
from thvtest import manifests
from thvtest.harness import RUNNER_IMAGE
from thvtest.render import operator_render

G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
SECRET_VALUE = "fault-suite-client-secret-d41d8cd9"
OWNED = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    cp: ControlPlane, method: str, path: str, body: Any = None, *, patience: float = 60
) -> tuple[int, Any]:
    """``cp.api_request`` that waits out apiserver restarts (connection errors, 5xx, 429)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            status, out = cp.api_request(method, path, body)
        except OSError:
            status, out = 0, None
        if status and status < 500 and status != 429:
            return status, out
        if time.monotonic() > deadline:
            raise AssertionError(f"{method} {path}: apiserver unavailable for {patience:.0f}s ({status})")
        time.sleep(0.2)


class OperatorProcess:
    """``thv operator run`` for one namespace, as a killable child process."""

    def __init__(self, kubeconfig: Path, namespace: str, use_configmap: bool, log_dir: Path) -> None:
        self.kubeconfig, self.namespace, self.use_configmap = kubeconfig, namespace, use_configmap
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.port = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, *, wait_ready: bool = True) -> None:
        self.starts += 1
        self.port = free_port()
        args = [sys.executable, "-m", "thv", "operator", "run", "--kubeconfig", str(self.kubeconfig)]
        args += ["--namespace", self.namespace, "--use-configmap" if self.use_configmap else "--use-flags"]
        args += ["--metrics-bind-address", f"127.0.0.1:{self.port}", "--resync-period", "600"]
        env = {**os.environ, "TOOLHIVE_RUNNER_IMAGE": RUNNER_IMAGE, "OTEL_TRACES_EXPORTER": "none"}
        self.proc = subprocess.Popen(args, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env)
        if wait_ready:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # never leave an operator behind (the callers' finally is not reached)
                raise

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"operator not ready in {timeout:.0f}s: {self.log_tail()}")

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"operator exited: {self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when a node dies or the OOM killer strikes."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def logs(self) -> str:
        return "".join(
            (self.log_dir / f"operator-{i}.log").read_text(errors="replace")
            for i in range(1, self.starts + 1)
        )


def extauth(
    name: str, audience: str, header: str | None = None, scopes: list[str] | None = None
) -> dict[str, Any]:
    return manifests.extauth(
        name,
        audience=audience,
        secret=("fault-client", "secret"),
        tokenUrl="https://idp.example.com/realms/mcp/protocol/openid-connect/token",
        clientId="mcp-proxy",
        externalTokenHeaderName=header or None,
        scopes=scopes or None,
    )


def toolconfig(name: str, tools: list[str]) -> dict[str, Any]:
    return manifests.toolconfig(name, toolsFilter=tools)


@dataclass
class Churn:
    """A seeded sequence of ``ops`` API writes in one namespace, run on a worker thread."""

    cp: ControlPlane
    ns: str
    seed: int
    ops: int = 200
    max_servers: int = 40
    done: int = 0
    log: list[str] = field(default_factory=list)
    error: BaseException | None = None
    on_create: Callable[[str], None] | None = None
    _servers: set[str] = field(default_factory=set)
    _thread: threading.Thread | None = None

    EXTAUTHS = ("ea-0", "ea-1", "ea-2")
    TOOLCONFIGS = ("tc-0", "tc-1")

    def setup(self) -> None:
        """The configs and the Secret every server may reference."""
        cp, ns = self.cp, self.ns
        secret = {"metadata": {"name": "fault-client"}, "stringData": {"secret": SECRET_VALUE}}
        assert request(cp, "POST", f"/api/v1/namespaces/{ns}/secrets", secret)[0] == 201
        for i, name in enumerate(self.EXTAUTHS):
            body = extauth(name, f"aud-{i}", header="X-Upstream-Token" if i == 2 else None)
            status, out = request(cp, "POST", f"{G}/{ns}/mcpexternalauthconfigs", body)
            assert status == 201, out
        for name in self.TOOLCONFIGS:
            status, out = request(cp, "POST", f"{G}/{ns}/mcptoolconfigs", toolconfig(name, ["fetch"]))
            assert status == 201, out

    def _server(self, rng: random.Random, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "image": f"ghcr.io/stackloklabs/gofetch/server:{rng.choice(['1.0.0', '1.0.1', '1.1.0'])}",
            "transport": rng.choice(["streamable-http", "stdio", "sse"]),
            "mcpPort": 8080,
            "args": [f"--seed={rng.randrange(1000)}"],
        }
        if rng.random() < 0.7:
            spec["externalAuthConfigRef"] = {"name": rng.choice(self.EXTAUTHS)}
        if rng.random() < 0.5:
            spec["toolConfigRef"] = {"name": rng.choice(self.TOOLCONFIGS)}
        return {
            "apiVersion": "toolhive.stacklok.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": name},
            "spec": spec,
        }

    def _step(self, rng: random.Random, i: int) -> str:
        cp, ns = self.cp, self.ns
        roll = rng.random()
        if (roll < 0.35 or not self._servers) and len(self._servers) < self.max_servers:
            name = f"s-{i:03d}"
            status, out = request(cp, "POST", f"{G}/{ns}/mcpservers", self._server(rng, name))
            # 409 AlreadyExists: the apiserver died after storing the object but before answering,
            # and request() sent the POST again (names are unique per step, so it is ours)
            assert status == 201 or (status == 409 and out.get("reason") == "AlreadyExists"), out
            self._servers.add(name)
            if self.on_create is not None:
                self.on_create(name)
            return f"create {name}"
        if roll < 0.6:
            name = rng.choice(sorted(self._servers))
            new = self._server(rng, name)
            # a merge patch of the whole spec: refs not in ``new`` are removed with null
            patch = {
                "spec": {
                    **new["spec"],
                    **{k: None for k in ("externalAuthConfigRef", "toolConfigRef") if k not in new["spec"]},
                }
            }
            status, out = request(cp, "PATCH", f"{G}/{ns}/mcpservers/{name}", patch)
            assert status == 200, out
            return f"update {name}"
        if roll < 0.72:
            name = rng.choice(sorted(self._servers))
            status, out = request(cp, "DELETE", f"{G}/{ns}/mcpservers/{name}")
            assert status in (200, 202, 404), out
            self._servers.discard(name)
            return f"delete {name}"
        if roll < 0.9:
            name = rng.choice(self.EXTAUTHS)
            patch = {
                "spec": {
                    "tokenExchange": {
                        "audience": f"aud-{rng.randrange(10_000)}",
                        "scopes": rng.sample(["read", "write", "admin"], rng.randrange(0, 3)),
                    }
                }
            }
            status, out = request(cp, "PATCH", f"{G}/{ns}/mcpexternalauthconfigs/{name}", patch)
            assert status == 200, out
            return f"edit {name}"
        name = rng.choice(self.TOOLCONFIGS)
        tools = rng.sample(["fetch", "search", "read", "write"], rng.randrange(1, 4))
        status, out = request(
            cp, "PATCH", f"{G}/{ns}/mcptoolconfigs/{name}", {"spec": {"toolsFilter": tools}}
        )
        assert status == 200, out
        return f"edit {name}"

    def run(self) -> None:
        rng = random.Random(self.seed)
        try:
            for i in range(self.ops):
                self.log.append(self._step(rng, i))
                self.done = i + 1
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> Churn:
        self._thread = threading.Thread(target=self.run, name=f"churn-{self.seed}", daemon=True)
        self._thread.start()
        return self

    def wait_until(self, done: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.done < done and self.error is None:
            assert self._thread is not None and self._thread.is_alive(), "churn stopped"
            assert time.monotonic() < deadline, f"churn stuck at {self.done}/{self.ops}"
            time.sleep(0.01)

    def join(self, timeout: float = 300) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"churn stuck at {self.done}/{self.ops}"
        if self.error is not None:
            raise self.error


def _items(cp: ControlPlane, path: str) -> list[dict[str, Any]]:
    status, body = request(cp, "GET", path)
    assert status == 200, body
    items: list[dict[str, Any]] = body["items"]
    kind = str(body.get("kind", "")).removesuffix("List")
    for i in items:  # list items carry no apiVersion/kind
        i.setdefault("apiVersion", body.get("apiVersion"))
        i.setdefault("kind", kind)
    return items


def problems(cp: ControlPlane, ns: str, use_configmap: bool) -> list[str]:
    """Everything that differs from the desired state (empty when converged)."""
    servers = [s for s in _items(cp, f"{G}/{ns}/mcpservers") if not s["metadata"].get("deletionTimestamp")]
    extauths = _items(cp, f"{G}/{ns}/mcpexternalauthconfigs")
    toolconfigs = _items(cp, f"{G}/{ns}/mcptoolconfigs")
    docs: list[dict[str, Any]] = []
    for kind, items in (
        ("MCPServer", servers),
        ("MCPExternalAuthConfig", extauths),
        ("MCPToolConfig", toolconfigs),
    ):
        docs += [{**i, "kind": kind} for i in items]
    settings = OperatorSettings.from_env(use_configmap=use_configmap, runner_image=RUNNER_IMAGE)
    secrets = [{**i, "kind": "Secret"} for i in _items(cp, f"/api/v1/namespaces/{ns}/secrets")]
    desired, errors = render_docs(docs + secrets, settings, ns)
    out = [f"render: {e}" for e in errors if "warning" not in e]
    # the end state rendered the operator's way (its gatherer over the same objects) is the same,
    # whole objects and reasons, as thv render's
    if operator_render(docs + secrets, settings, ns) != (desired, errors):
        out.append("thv render and the operator's resolver disagree on the end state")

    uids = {s["metadata"]["name"]: s["metadata"]["uid"] for s in servers}
    live: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, path in OWNED.items():
        for obj in _items(cp, path.format(ns=ns)):
            live[(kind, obj["metadata"]["name"])] = obj
    wanted: set[tuple[str, str]] = set()
    for obj in desired:
        key = (obj["kind"], obj["metadata"]["name"])
        wanted.add(key)
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "MCPServer":
                ref["uid"] = uids.get(ref["name"], "")
        have = live.get(key)
        if have is None:
            out.append(f"missing {key[0]} {key[1]}")
        elif not is_subset(obj, have):
            detail = "".join(unified_diff(project(have, obj), obj, "live")[2:14]) if not out else ""
            out.append(f"differs {key[0]} {key[1]}" + (f"\n{detail}" if detail else ""))
    for key, obj in live.items():
        owners = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") == "MCPServer"]
        if owners and key not in wanted:
            out.append(f"orphan {key[0]} {key[1]} (owner {owners[0]['name']})")
        if len(owners) > 1:
            out.append(f"duplicate owners on {key[0]} {key[1]}")
        out.extend(
            f"stale owner uid on {key[0]} {key[1]}" for r in owners if r.get("uid") != uids.get(r["name"])
        )

    hashes = {("MCPExternalAuthConfig", c["metadata"]["name"]): c for c in extauths}
    hashes |= {("MCPToolConfig", c["metadata"]["name"]): c for c in toolconfigs}
    for (kind, name), cfg in hashes.items():
        spec = (
            msgspec.convert(cfg, MCPExternalAuthConfig).spec
            if kind == "MCPExternalAuthConfig"
            else msgspec.convert(cfg, MCPToolConfig).spec
        )
        want = config_hash(spec)
        if (cfg.get("status") or {}).get("configHash") != want:
            out.append(f"stale status.configHash on {kind} {name}")
    for s in servers:
        ann = s["metadata"].get("annotations") or {}
        for ref_key, kind, annotation in (
            ("externalAuthConfigRef", "MCPExternalAuthConfig", ANNOTATION_EXTAUTH_HASH),
            ("toolConfigRef", "MCPToolConfig", ANNOTATION_TOOLCONFIG_HASH),
        ):
            ref = s["spec"].get(ref_key)
            if ref and (kind, ref["name"]) in hashes:
                current = (hashes[(kind, ref["name"])].get("status") or {}).get("configHash")
                if ann.get(annotation) != current:
                    out.append(f"stale {annotation} on MCPServer {s['metadata']['name']}")
        status = s.get("status") or {}
        if status.get("phase") != "Running":
            out.append(f"MCPServer {s['metadata']['name']} phase {status.get('phase')!r}")
    return out


def wait_converged(
    cp: ControlPlane,
    ns: str,
    use_configmap: bool,
    *,
    timeout: float = 120,
    alive: Callable[[], None] | None = None,
) -> float:
    """Wait until :func:`problems` is empty; returns the seconds it took."""
    t0 = time.monotonic()
    last: list[str] = []
    while time.monotonic() - t0 < timeout:
        if alive is not None:
            alive()
        last = problems(cp, ns, use_configmap)
        if not last:
            return time.monotonic() - t0
        if int(time.monotonic() - t0) % 5 == 0:
            print(
                f"[faults]   {time.monotonic() - t0:.0f}s: {len(last)} problems, e.g. {[p.split(chr(10))[0] for p in last[:4]]}"
            )
        time.sleep(0.5)
    raise AssertionError(f"not converged after {timeout:.0f}s: {len(last)} problems, e.g. {last[:10]}")
