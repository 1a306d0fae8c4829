"""Start and stop the local control plane as child processes on loopback.

Bring-up: PKI → etcd → kube-apiserver (RBAC, audit log, service accounts) → CRDs (optional)
→ kube-controller-manager, kube-scheduler, kwok → one fake Node, Ready. Teardown: SIGTERM
in reverse order, SIGKILL after a grace period, temp dir removed; children die with the
Python process even if it is SIGKILLed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thv.devcluster.audit import AuditLog
from thv.devcluster.pki import make_pki

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tools" / "controlplane" / "build.sh"
ADMIN_USER = "thv-admin"
CONTROLLERS = ",".join(
    [
        "deployment-controller",
        "replicaset-controller",
        "garbage-collector-controller",
        "namespace-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "root-ca-certificate-publisher-controller",
        "clusterrole-aggregation-controller",
    ]
)
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: None
  resources:
  - group: coordination.k8s.io
    resources: [leases]
  users: [system:apiserver, system:kube-scheduler, system:kube-controller-manager, kwok]
- level: Metadata
"""


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started (the message names the log file)."""


def _log(msg: str) -> None:
    print(f"[devcluster] {msg}", file=sys.stderr, flush=True)


def build_binaries() -> Path:
    """Build (or reuse from the cache) the control-plane binaries; returns their directory."""
    env_dir = os.environ.get("THV_CONTROLPLANE_BIN")
    if env_dir:
        return Path(env_dir)
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"control-plane build failed (exit {proc.returncode}); see the output above")
    return Path(proc.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class _Proc:
    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None


@dataclass
class ControlPlane:
    """One local cluster. ``start()`` blocks until the node is Ready; ``stop()`` cleans up."""

    base_dir: Path | None = None
    keep_dir: bool = False
    bin_dir: Path | None = None
    extra_apiserver_args: list[str] = field(default_factory=list)
    dir: Path = field(init=False)
    etcd_port: int = field(init=False, default=0)
    peer_port: int = field(init=False, default=0)
    port: int = field(init=False, default=0)
    admin_token: str = field(init=False, default="")
    _procs: dict[str, _Proc] = field(init=False, default_factory=dict)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    @property
    def audit_log_path(self) -> Path:
        return self.dir / "audit.log"

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.audit_log_path)

    def log_path(self, component: str) -> Path:
        return self.dir / "logs" / f"{component}.log"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        self.bin_dir = self.bin_dir or build_binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="thv-cp-", dir=self.base_dir))
        (self.dir / "logs").mkdir()
        atexit.register(self.stop)
        try:
            self._prepare()
            self._start_etcd()
            self._start_apiserver()
            self._start_others()
            self._create_node()
        except BaseException:
            self.stop()
            raise
        _log(
            f"control plane ready in {time.monotonic() - t0:.1f}s at {self.server} (kubeconfig {self.kubeconfig})"
        )
        return self

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every process (reverse order) and remove the data dir. Safe to call twice."""
        for proc in reversed(list(self._procs.values())):
            self._terminate(proc)
        self._procs.clear()
        if getattr(self, "dir", None) is not None and self.dir.exists() and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _prepare(self) -> None:
        make_pki(self.dir / "pki")
        self.admin_token = os.urandom(24).hex()
        (self.dir / "tokens.csv").write_text(
            f'{self.admin_token},{ADMIN_USER},thv-admin-uid,"system:masters"\n'
        )
        (self.dir / "tokens.csv").chmod(0o600)
        (self.dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self.etcd_port, self.peer_port, self.port = free_port(), free_port(), free_port()
        self.write_kubeconfig(self.kubeconfig, self.admin_token, ADMIN_USER)
        assert self.bin_dir is not None
        stages = sorted((self.bin_dir / "kwok-stages").glob("*.yaml"))
        (self.dir / "kwok.yaml").write_text("\n---\n".join(p.read_text() for p in stages))

    def write_kubeconfig(self, path: Path, token: str, user: str = "user") -> Path:
        """Write a kubeconfig for this cluster authenticating with ``token``."""
        import base64

        ca = base64.b64encode(self.ca_path.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "thv-dev",
            "clusters": [
                {"name": "thv-dev", "cluster": {"server": self.server, "certificate-authority-data": ca}}
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": "thv-dev", "context": {"cluster": "thv-dev", "user": user, "namespace": "default"}}
            ],
        }
        path.write_text(json.dumps(cfg, indent=2))
        path.chmod(0o600)
        return path

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        proc = _Proc(name, args, self.log_path(name))
        log = proc.log_path.open("ab")
        proc.popen = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        log.close()
        self._procs[name] = proc
        return proc

    def _terminate(self, proc: _Proc, grace: float = 5.0) -> None:
        p = proc.popen
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)

    def _wait(self, name: str, check: Any, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        proc = self._procs[name]
        while True:
            if proc.popen is not None and proc.popen.poll() is not None:
                tail = proc.log_path.read_text(errors="replace")[-3000:]
                raise ControlPlaneError(
                    f"{name} exited with {proc.popen.returncode}; log {proc.log_path}:\n{tail}"
                )
            if check():
                _log(f"{name} ready in {time.monotonic() - t0:.1f}s")
                return
            if time.monotonic() - t0 > timeout:
                raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s; log {proc.log_path}")
            time.sleep(0.2)

    def _http_ok(self, url: str, *, tls: bool = False, token: str | None = None) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_path)) if tls else None
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _start_etcd(self) -> None:
        c, p = self.etcd_port, self.peer_port
        self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--name=t0",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{c}",
                f"--advertise-client-urls=http://127.0.0.1:{c}",
                f"--listen-peer-urls=http://127.0.0.1:{p}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p}",
                f"--initial-cluster=t0=http://127.0.0.1:{p}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: self._http_ok(f"http://127.0.0.1:{c}/health"))

    def _apiserver_args(self) -> list[str]:
        pki = self.dir / "pki"
        return [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={self.dir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=TaintNodesByCondition",
            f"--audit-policy-file={self.dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-maxsize=0",
            "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0",
            "--enable-priority-and-fairness=false",
            *self.extra_apiserver_args,
        ]

    def _start_apiserver(self) -> None:
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait(
            "kube-apiserver", lambda: self._http_ok(f"{self.server}/readyz", tls=True, token=self.admin_token)
        )

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        """Stop kube-apiserver (SIGTERM), optionally stay down, start it again, wait for /readyz."""
        self._terminate(self._procs["kube-apiserver"])
        if down_for:
            time.sleep(down_for)
        self._start_apiserver()

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision so older resourceVersions answer 410 Gone."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3"
        req = urllib.request.Request(
            f"{base}/kv/range", data=json.dumps({"key": "AA=="}).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            rev = int(json.load(r)["header"]["revision"])
        req = urllib.request.Request(
            f"{base}/kv/compaction",
            data=json.dumps({"revision": str(rev), "physical": True}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
        return rev

    def _start_others(self) -> None:
        kc = str(self.kubeconfig)
        pki = self.dir / "pki"
        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kc}",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-gc-syncs=20",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                self._bin("kube-scheduler"),
                f"--kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        self._spawn(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={kc}",
                "--manage-all-nodes=true",
                f"--config={self.dir / 'kwok.yaml'}",
                "--node-lease-duration-seconds=40",
            ],
        )

    def kubectl_json(self, method: str, path: str, body: Any | None = None) -> Any:
        """A minimal admin HTTP call (for bring-up and tests that must not depend on thv)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.server}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return json.load(r)

    def _create_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "kwok-node-0",
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"},
            },
        }
        self.kubectl_json("POST", "/api/v1/nodes", node)

        def ready() -> bool:
            n = self.kubectl_json("GET", "/api/v1/nodes/kwok-node-0")
            conds = n.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        self._procs.setdefault("node", self._procs["kwok"])
        self._wait("node", ready)
        del self._procs["node"]
