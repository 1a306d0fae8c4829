"""The upstream ToolHive operator as a benchmark peer of thv, on the local control plane.

``tools/toolhive/build.sh`` builds ``github.com/stacklok/toolhive/cmd/thv-operator`` at
:data:`TOOLHIVE_VERSION` (cached); this module runs that binary as a child process against a
:class:`devcluster.ControlPlane`:

- CRDs: thv's own (``thv.crdgen.crd_objects()``) for the kinds both operators serve
  (MCPServer, MCPToolConfig, MCPExternalAuthConfig), so both run against the same schema; the
  upstream CRDs from the module cache (``deploy/charts/operator-crds/crds``) only for the kinds
  thv does not serve (MCPRegistry, whose controller the upstream binary always starts and whose
  list its image validation calls on every reconcile; MCPRemoteProxy, installed for completeness);
- identity: the ServiceAccount ``toolhive-system/toolhive-operator`` bound to the ClusterRole
  of upstream's chart (read from the module cache), authenticated with a TokenRequest token, so
  the apiserver audit log attributes its writes to :data:`PEER_USER`;
- process: ConfigMap mode (``TOOLHIVE_USE_CONFIGMAP=true``; v0.3.11 ignores it and is always in
  ConfigMap mode), no leader election, metrics off, health probes on a free loopback port,
  ``WATCH_NAMESPACE`` scoping, ``CI=true`` (skips the usage/update check, the only outbound
  call besides the apiserver), and an unreachable loopback HTTP(S) proxy as a second guard;
- memory: :meth:`OperatorProcess.memory` reads ``VmRSS``/``VmHWM`` from ``/proc/<pid>/status``.

:class:`OperatorProcess` is generic: ``bench_compare`` runs ``python -m thv operator run`` with it
too, so both operators are measured the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devcluster import ControlPlane
from devcluster.controlplane import child_setup, free_port
from devcluster.gobuild import run_build_script
from devcluster.paths import tool_script
from thv.crdgen import crd_objects
from thvtest.harness import token_kubeconfig


def _build_script() -> Path:
    """``tools/toolhive/build.sh`` of the checkout (``THV_CHECKOUT`` or the working directory)."""
    return tool_script("toolhive")


TOOLHIVE_MODULE = "github.com/stacklok/toolhive"
TOOLHIVE_VERSION = "v0.3.11"
PEER_NS = "toolhive-system"
PEER_SA = "toolhive-operator"
PEER_USER = f"system:serviceaccount:{PEER_NS}:{PEER_SA}"
PEER_ROLE = "toolhive-peer-manager-role"
RUNNER_IMAGE = f"ghcr.io/stacklok/toolhive/proxyrunner:{TOOLHIVE_VERSION}"
"""The proxy-runner image both operators put into Deployments in the benchmarks (kwok never pulls it)."""
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def say(msg: str) -> None:
    print(f"[peer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- build and module ----------------------------------------------------------------------------
def build_peer(*, quiet: bool = False) -> Path:
    """Build (or take from the cache) the upstream operator; returns the binary's path."""
    path = run_build_script(_build_script(), RuntimeError, quiet=quiet)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{_build_script()} printed {path}, which is not an executable")
    return path


def module_dir() -> Path:
    """The pinned upstream module's directory in the Go module cache (after :func:`build_peer`)."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", TOOLHIVE_MODULE],
        cwd=_build_script().parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not out:
        raise RuntimeError(f"{TOOLHIVE_MODULE} is not in the module cache; run {_build_script()}")
    return Path(out)


def upstream_crds() -> list[dict[str, Any]]:
    """The upstream CRDs of :data:`TOOLHIVE_VERSION` (from the module cache)."""
    crds: list[dict[str, Any]] = []
    for path in sorted((module_dir() / "deploy" / "charts" / "operator-crds" / "crds").glob("*.yaml")):
        crds.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return crds


def peer_crds() -> tuple[list[dict[str, Any]], list[str]]:
    """The CRDs to install for the peer: thv's for the shared kinds, upstream's for the rest.

    Returns ``(crds, names of the upstream-only ones)``."""
    ours = crd_objects()
    served = {c["metadata"]["name"] for c in ours}
    extra = [c for c in upstream_crds() if c["metadata"]["name"] not in served]
    return ours + extra, [c["metadata"]["name"] for c in extra]


def upstream_cluster_role(name: str = PEER_ROLE) -> dict[str, Any]:
    """The ClusterRole of upstream's operator chart, renamed."""
    path = module_dir() / "deploy" / "charts" / "operator" / "templates" / "clusterrole" / "role.yaml"
    role: dict[str, Any] = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    role["metadata"] = {"name": name}
    return role


# -- cluster set-up ------------------------------------------------------------------------------
def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def apply_crds(cp: ControlPlane, crds: Sequence[dict[str, Any]]) -> None:
    """Create or replace each CRD and wait until it is Established."""
    for crd in crds:
        crd = json.loads(json.dumps(crd))
        name = crd["metadata"]["name"]
        status, body = cp.api_request("GET", f"{CRD_API}/{name}")
        if status == 404:
            status, body = cp.api_request("POST", CRD_API, crd)
            if status != 201:
                raise RuntimeError(f"creating CRD {name}: HTTP {status}: {body}")
        else:
            crd["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
            status, body = cp.api_request("PUT", f"{CRD_API}/{name}", crd)
            if status != 200:
                raise RuntimeError(f"replacing CRD {name}: HTTP {status}: {body}")

        def established(name: str = name) -> bool:
            _, b = cp.api_request("GET", f"{CRD_API}/{name}")
            conds = {c["type"]: c["status"] for c in (b.get("status") or {}).get("conditions") or []}
            return conds.get("Established") == "True"

        _wait(established, 30, f"CRD {name} established")


def install_peer_crds(cp: ControlPlane) -> list[str]:
    """Install thv's CRDs and the upstream-only ones; returns the upstream-only CRD names."""
    crds, extra = peer_crds()
    apply_crds(cp, crds)
    return extra


def service_account_kubeconfig(
    cp: ControlPlane,
    directory: Path,
    *,
    namespace: str,
    name: str,
    cluster_role: dict[str, Any],
    filename: str,
) -> Path:
    """Namespace + ServiceAccount + ClusterRole + ClusterRoleBinding, and a kubeconfig holding
    a TokenRequest token for the ServiceAccount (idempotent)."""
    cp.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    cp.api_request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}})
    role_name = cluster_role["metadata"]["name"]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    cp.api_request("DELETE", f"{rbac}/clusterroles/{role_name}")
    status, body = cp.api_request("POST", f"{rbac}/clusterroles", cluster_role)
    if status != 201:
        raise RuntimeError(f"creating ClusterRole {role_name}: HTTP {status}: {body}")
    cp.api_request("DELETE", f"{rbac}/clusterrolebindings/{role_name}")
    binding = {
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    status, body = cp.api_request("POST", f"{rbac}/clusterrolebindings", binding)
    if status != 201:
        raise RuntimeError(f"creating ClusterRoleBinding {role_name}: HTTP {status}: {body}")
    return token_kubeconfig(cp, namespace, name, directory / filename)[0]


def peer_kubeconfig(cp: ControlPlane, directory: Path) -> Path:
    """The peer's identity (:data:`PEER_USER`) with upstream's chart ClusterRole."""
    return service_account_kubeconfig(
        cp,
        directory,
        namespace=PEER_NS,
        name=PEER_SA,
        cluster_role=upstream_cluster_role(),
        filename="toolhive-peer.kubeconfig",
    )


# -- processes -----------------------------------------------------------------------------------
@dataclass
class Memory:
    rss_kib: int
    hwm_kib: int

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def hwm_mib(self) -> float:
        return self.hwm_kib / 1024


def read_memory(pid: int) -> Memory | None:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a live process, ``None`` if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            vals[key] = int(rest.split()[0])
    if len(vals) < 2:
        return None  # a zombie has no memory lines
    return Memory(vals["VmRSS"], vals["VmHWM"])


@dataclass
class OperatorProcess:
    """One operator as a child process: started with :meth:`start`, ready per ``ready``,
    stopped with :meth:`stop` (SIGTERM, then SIGKILL); its output goes to ``log_path``.

    While it runs, a sampler thread records the highest ``VmRSS`` seen (``peak_rss_kib``);
    ``VmHWM`` from the kernel is the authoritative peak (:meth:`memory`)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    ready_log_lines: tuple[str, int] | None = None
    """``(substring, count)``: ready once the log holds ``count`` lines containing it."""
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    peak_rss_kib: int = 0
    last_memory: Memory | None = None
    _stop_sampler: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> OperatorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"==== {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            self.started_at = time.monotonic()
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                # dies with this process (PR_SET_PDEATHSIG), even if that is SIGKILLed
                preexec_fn=child_setup(os.getpid()),
            )
        self.peak_rss_kib = 0
        self._stop_sampler.clear()
        self._sampler = threading.Thread(target=self._sample, name=f"rss-{self.name}", daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop_sampler.wait(0.5):
            mem = read_memory(self.pid)
            if mem is None:
                return
            self.last_memory = mem
            self.peak_rss_kib = max(self.peak_rss_kib, mem.rss_kib)

    def memory(self) -> Memory | None:
        mem = read_memory(self.pid)
        if mem is not None:
            self.last_memory = mem
            self.peak_rss_kib = max(self.peak_rss_kib, mem.rss_kib)
        return mem

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self.popen.returncode}; log {self.log_path}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def is_ready(self) -> bool:
        self.check()
        if self.ready_url is not None:
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                    if r.status != 200:
                        return False
            except (urllib.error.URLError, OSError):
                return False
        if self.ready_log_lines is not None:
            needle, count = self.ready_log_lines
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                return False
            if sum(1 for line in text.splitlines() if needle in line) < count:
                return False
        return True

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until ready; returns seconds since start."""
        _wait(self.is_ready, timeout, f"{self.name} ready")
        self.ready_at = time.monotonic()
        return self.ready_at - self.started_at

    def stop(self, grace: float = 10.0) -> None:
        self._stop_sampler.set()
        p = self.popen
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def peer_process(
    binary: Path,
    kubeconfig: Path,
    log_path: Path,
    *,
    namespaces: Sequence[str] | None,
    extra_env: Mapping[str, str] | None = None,
) -> OperatorProcess:
    """The upstream operator, configured as described in the module docstring (not started)."""
    health = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KUBECONFIG": str(kubeconfig),
        "TOOLHIVE_USE_CONFIGMAP": "true",
        "TOOLHIVE_RUNNER_IMAGE": RUNNER_IMAGE,
        "POD_NAMESPACE": PEER_NS,
        "UNSTRUCTURED_LOGS": "false",
        # no usage/update check (pkg/updates skips it under CI); and any other outbound HTTP
        # goes to a closed loopback port (loopback itself, i.e. the apiserver, is never proxied)
        "CI": "true",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        **(extra_env or {}),
    }
    if namespaces is not None:
        env["WATCH_NAMESPACE"] = ",".join(namespaces)
    argv = [
        str(binary),
        "--leader-elect=false",
        "--metrics-bind-address=0",
        f"--health-probe-bind-address=127.0.0.1:{health}",
    ]
    return OperatorProcess(
        name=f"toolhive-operator {TOOLHIVE_VERSION}",
        argv=argv,
        env=env,
        log_path=log_path,
        ready_url=f"http://127.0.0.1:{health}/readyz",
        # one "Starting workers" line per controller: MCPServer, MCPToolConfig,
        # MCPExternalAuthConfig, MCPRegistry (after their caches synced)
        ready_log_lines=("Starting workers", 4),
    )


@contextlib.contextmanager
def run_peer(
    cp: ControlPlane,
    directory: Path,
    *,
    namespaces: Sequence[str] | None,
    binary: Path | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[OperatorProcess]:
    """Build (cached), set up CRDs and identity, start the peer, yield it once ready."""
    binary = binary or build_peer()
    install_peer_crds(cp)
    kubeconfig = peer_kubeconfig(cp, directory)
    proc = peer_process(binary, kubeconfig, directory / "toolhive-operator.log", namespaces=namespaces)
    with proc:
        proc.wait_ready(ready_timeout)
        yield proc


__all__ = [
    "PEER_NS",
    "PEER_ROLE",
    "PEER_SA",
    "PEER_USER",
    "RUNNER_IMAGE",
    "TOOLHIVE_VERSION",
    "Memory",
    "OperatorProcess",
    "apply_crds",
    "build_peer",
    "install_peer_crds",
    "module_dir",
    "peer_crds",
    "peer_kubeconfig",
    "peer_process",
    "read_memory",
    "run_peer",
    "service_account_kubeconfig",
    "upstream_cluster_role",
    "upstream_crds",
]
