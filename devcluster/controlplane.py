"""Start and stop the local control plane as child processes on loopback.

Bring-up: binaries (``tools/controlplane/build.sh``, cached) → PKI, tokens, kubeconfigs,
audit policy → etcd → kube-apiserver (RBAC, audit log, service accounts) → kube-controller-manager,
kube-scheduler, kwok → one fake Node, Ready → the ``default`` ServiceAccount exists.

Each component authenticates with its own token (all in ``system:masters``), so the audit log
tells the test's admin writes (user :data:`ADMIN_USER`) from the controllers' writes.

Lifecycle guarantees:

- children run in their own process group and get ``PR_SET_PDEATHSIG(SIGKILL)``, so they die
  with the thread that started them even if Python is SIGKILLed (start from a long-lived
  thread: the main thread or the event-loop thread, never a short-lived worker thread);
- ``stop()`` sends SIGTERM in reverse start order, SIGKILL after a grace period, and removes
  the data directory; an ``atexit`` hook and SIGTERM/SIGHUP handlers (installed only where no
  handler was set) do the same when the run is interrupted;
- a data directory whose owner died without cleaning up (SIGKILL) is removed by the next start
  (each owner holds an ``flock`` on ``<dir>/.owner.lock`` while it lives).

Sync API (``start``/``stop``/``restart_apiserver``/``compact_etcd``) and async twins
(``astart``/``astop``/``arestart_apiserver``/``acompact_etcd``, ``async with``) share one
implementation: bring-up steps are generators of waits, driven with ``time.sleep`` or
``anyio.sleep``; processes are always spawned on the calling thread.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Self

import anyio
import anyio.to_thread
import yaml

from devcluster import lifecycle
from devcluster.audit import AuditLog
from devcluster.gobuild import run_build_script
from devcluster.lifecycle import ManagedProcesses, Steps, Wait, new_owned_dir
from devcluster.node import NODE_IP, RealNode, check_host, reap_stale_node
from devcluster.paths import find_tool_script
from devcluster.pki import issue_cert, make_pki

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
ADMIN_USER = "thv-admin"
"""The username of the admin kubeconfig (group ``system:masters``) — the identity tests use."""
COMPONENT_USERS = {
    "kube-controller-manager": "system:kube-controller-manager",
    "kube-scheduler": "system:kube-scheduler",
    "kwok": "kwok",
    "kube-proxy": "system:kube-proxy",
}
"""Usernames of the other components in the audit log (all in ``system:masters``)."""
NODE_NAME = "kwok-node-0"
SERVICE_CIDR = "10.96.0.0/16"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)
REAL_NODE_CONTROLLERS = (
    "statefulset-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "endpoints-controller",
    "pod-garbage-collector-controller",
)
"""Added with a real node: StatefulSets (the runner's MCP servers), Service endpoints (kube-proxy, CoreDNS)."""
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: Metadata
"""
_DIR_PREFIX = "thv-cp-"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or changed: the message is one line naming
    the component and the log file to read; ``log_tail`` has the log's last lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class _AddressInUse(ControlPlaneError):
    """A component could not bind its port (picked free, then taken by someone else)."""


def _say(msg: str) -> None:
    print(f"[devcluster] {msg}", file=sys.stderr, flush=True)


# -- binaries ------------------------------------------------------------------------------------
def _missing_binaries(bin_dir: Path) -> list[str]:
    missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if not any((bin_dir / "kwok-stages").glob("*.yaml")):
        missing.append("kwok-stages/*.yaml")
    return missing


def cache_root() -> Path:
    """Where ``build.sh`` keeps built control planes (``$THV_CACHE_DIR/controlplane``)."""
    return Path(os.environ.get("THV_CACHE_DIR") or Path.home() / ".cache" / "thv") / "controlplane"


def build_binaries(*, quiet: bool = False) -> Path:
    """Build (or reuse from the cache) the control-plane binaries and return their directory.

    Order: ``$THV_CONTROLPLANE_BIN``; ``tools/controlplane/build.sh`` (its progress goes to
    stderr; a cold build takes minutes); without a source checkout, the newest complete
    directory in :func:`cache_root`.
    """
    t0 = time.monotonic()
    env_dir = os.environ.get("THV_CONTROLPLANE_BIN")
    if env_dir:
        bin_dir = Path(env_dir)
    elif (script := find_tool_script("controlplane")) is not None:
        bin_dir = run_build_script(script, ControlPlaneError, quiet=quiet)
    else:
        found = sorted(
            (d for d in cache_root().glob("*/bin") if not _missing_binaries(d)),
            key=lambda d: d.stat().st_mtime,
        )
        if not found:
            raise ControlPlaneError(
                f"no control-plane binaries: no checkout (THV_CHECKOUT) and none cached under {cache_root()}; "
                "set THV_CONTROLPLANE_BIN"
            )
        bin_dir = found[-1]
    missing = _missing_binaries(bin_dir)
    if missing:
        raise ControlPlaneError(f"{bin_dir} lacks {', '.join(missing)}")
    if not quiet:
        _say(f"binaries in {bin_dir} ({time.monotonic() - t0:.1f}s)")
    return bin_dir


# -- processes -----------------------------------------------------------------------------------
def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (callers retry if it is taken before use)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1
try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def child_setup(parent_pid: int) -> Callable[[], None]:
    """``preexec_fn``: die with the parent (SIGKILL), also if it died before prctl ran."""

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# -- process-wide cleanup ------------------------------------------------------------------------
_live: set[ControlPlane] = set()
_live_lock = threading.Lock()
_hooks_installed = False


def _stop_all() -> None:
    with _live_lock:
        planes = list(_live)
    for cp in planes:
        with contextlib.suppress(Exception):
            cp.stop()


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _on_fatal_signal)


def reap_stale_dirs(parent: Path) -> list[Path]:
    """Remove data directories under ``parent`` whose owner process is gone; returns them."""
    return lifecycle.reap_stale_dirs(parent, _DIR_PREFIX)


# -- the control plane ---------------------------------------------------------------------------
class ControlPlane(ManagedProcesses):
    """One local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok.

    ``ControlPlane().start()`` (or ``with ControlPlane() as cp``, or ``await cp.astart()``,
    ``async with ControlPlane() as cp``) returns once the fake node is Ready; ``stop()``
    (idempotent) stops everything and removes the data directory.
    """

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        bin_dir: Path | None = None,
        keep_dir: bool = False,
        extra_apiserver_args: Sequence[str] = (),
        quiet: bool = False,
        node: Literal["kwok", "real"] = "kwok",
    ) -> None:
        """``base_dir``: parent of the data directory (default: the system temp dir);
        ``bin_dir``: prebuilt binaries (default: :func:`build_binaries`); ``keep_dir``: leave
        the data directory (logs, audit log, etcd) in place after ``stop()`` (also with env
        ``THV_DEVCLUSTER_KEEP=1``); ``quiet``: no progress lines on stderr; ``node``: ``"kwok"``
        (one fake node, pods only pretend to run: for scale) or ``"real"`` (also a real node,
        :mod:`devcluster.node`, where pods run from locally built images; the fake node is then
        tainted ``thv.dev/fake-node=true:NoSchedule`` and managed by annotation only)."""
        self.base_dir = base_dir
        self.bin_dir = bin_dir
        self.keep_dir = keep_dir or os.environ.get("THV_DEVCLUSTER_KEEP") == "1"
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.quiet = quiet
        self.node_kind = node
        self._node: RealNode | None = None
        self._dir: Path | None = None
        self._lock_fd: int | None = None
        self._procs: dict[str, _Proc] = {}
        self._tokens: dict[str, str] = {}
        self._mutex = threading.RLock()
        self.etcd_port = 0
        self.port = 0
        self._peer_port = 0
        self.startup_seconds = 0.0

    # -- addresses and files ---------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """The data directory (PKI, kubeconfigs, logs, audit log, etcd data)."""
        if self._dir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._dir

    @property
    def server(self) -> str:
        """The API server URL, ``https://127.0.0.1:<port>``."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def node(self) -> RealNode:
        """The real node (``node="real"``): images, containerd, host IP for pods."""
        if self._node is None:
            raise ControlPlaneError("this control plane has no real node (start it with node='real')")
        return self._node

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (token of :data:`ADMIN_USER`, CA data inline)."""
        return self.dir / "admin.kubeconfig"

    @property
    def admin_token(self) -> str:
        return self._tokens[ADMIN_USER]

    @property
    def ca_path(self) -> Path:
        """The CA that signed the API server's serving certificate."""
        return self.dir / "pki" / "ca.crt"

    @property
    def audit_log_path(self) -> Path:
        """The API server's audit log (JSON lines, ``audit.k8s.io/v1`` Events)."""
        return self.dir / "audit.log"

    @property
    def audit(self) -> AuditLog:
        """A reader of :attr:`audit_log_path` (``mark()``, ``events()``, ``writes()``)."""
        return AuditLog(self.audit_log_path)

    def log_path(self, component: str) -> Path:
        """``<dir>/logs/<component>.log`` (stdout and stderr; appended across restarts)."""
        return self.dir / "logs" / f"{component}.log"

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.popen.poll() is None for p in self._procs.values())

    def check(self) -> None:
        """Raise :class:`ControlPlaneError` (with the log's tail) if a component has exited."""
        self._check_alive(Wait("", lambda: True, None, 0.0))

    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self._procs.items()}

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        """Build/locate the binaries, start everything, wait until the node is Ready."""
        t0 = time.monotonic()
        if self.bin_dir is None:
            self.bin_dir = build_binaries(quiet=self.quiet)
        try:
            self._drive(self._start_steps(t0))
        except BaseException:
            self._fail_cleanup()
            raise
        return self

    async def astart(self) -> Self:
        """:meth:`start` for async code (builds in a worker thread, spawns on the loop thread)."""
        t0 = time.monotonic()
        if self.bin_dir is None:
            self.bin_dir = await anyio.to_thread.run_sync(lambda: build_binaries(quiet=self.quiet))
        try:
            await self._adrive(self._start_steps(t0))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._fail_cleanup)
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every process in reverse start order (SIGKILL after a grace period), then
        remove the data directory unless ``keep_dir``. Safe to call twice and from atexit."""
        self._stop(remove_dir=not self.keep_dir)

    def _stop(self, *, remove_dir: bool) -> None:
        with self._mutex:
            t0 = time.monotonic()
            had_procs = bool(self._procs)
            while self._procs:
                name = next(reversed(self._procs))
                self._terminate(self._procs.pop(name))
            if self._node is not None:
                self._node.undo_host()
            with _live_lock:
                _live.discard(self)
            if self._dir is not None and self._dir.exists():
                if remove_dir:
                    shutil.rmtree(self._dir, ignore_errors=True)
                elif self.keep_dir:
                    self._log(f"kept {self._dir}")
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            if had_procs:
                self._log(f"stopped in {time.monotonic() - t0:.1f}s")

    # -- fault injection -------------------------------------------------------------------------
    def stop_apiserver(self, *, kill: bool = False) -> None:
        """Stop kube-apiserver: SIGTERM (graceful: watches are closed within ~2 s) or SIGKILL
        (``kill=True``: connections reset, like a crash). Other components keep running."""
        with self._mutex:
            proc = self._procs.get("kube-apiserver")
            if proc is not None:
                self._terminate(proc, kill=kill)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port and wait for ``/readyz``."""
        self._drive(self._apiserver_steps(restart=True))

    def restart_apiserver(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        """:meth:`stop_apiserver`, stay down ``down_for`` seconds, :meth:`start_apiserver`.

        After a restart the watch cache is rebuilt at the current revision, so a watch that
        resumes from an older resourceVersion gets ``ERROR`` 410 "too old resource version".
        """
        t0 = time.monotonic()
        self.stop_apiserver(kill=kill)
        if down_for:
            time.sleep(down_for)
        self.start_apiserver()
        self._log(f"kube-apiserver restarted in {time.monotonic() - t0:.1f}s")

    async def astop_apiserver(self, *, kill: bool = False) -> None:
        await anyio.to_thread.run_sync(lambda: self.stop_apiserver(kill=kill))

    async def astart_apiserver(self) -> None:
        await self._adrive(self._apiserver_steps(restart=True))

    async def arestart_apiserver(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        t0 = time.monotonic()
        await self.astop_apiserver(kill=kill)
        if down_for:
            await anyio.sleep(down_for)
        await self.astart_apiserver()
        self._log(f"kube-apiserver restarted in {time.monotonic() - t0:.1f}s")

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision, the way kube-apiserver's own compactor does
        (record it under ``compact_rev_key``, then compact), and return that revision.

        Effects on the API server: reads at an older resourceVersion that reach etcd answer
        410 Gone — at once for quorum paths, within ~15 s for ``resourceVersionMatch=Exact``
        lists (the watch cache drops its snapshots when it polls the compaction revision).
        Watches resuming from an old resourceVersion are served from the watch-cache history
        (at least 75 s of events) and keep working; to make those fail with 410 too, follow with
        :meth:`restart_apiserver`.
        """
        rev = int(self._etcd("kv/range", {"key": _b64("\0")})["header"]["revision"])
        self._etcd("kv/put", {"key": _b64("compact_rev_key"), "value": _b64(str(rev))})
        self._etcd("kv/compaction", {"revision": str(rev), "physical": True})
        self._log(f"etcd compacted at revision {rev}")
        return rev

    async def acompact_etcd(self) -> int:
        return await anyio.to_thread.run_sync(self.compact_etcd)

    def expire_resource_versions(self, *, kill: bool = False) -> int:
        """Make every resourceVersion issued so far answer 410 Gone — lists at an old
        version and watches resuming from one (in-stream ``ERROR`` 410): :meth:`compact_etcd`
        then :meth:`restart_apiserver`. Returns the compaction revision."""
        rev = self.compact_etcd()
        self.restart_apiserver(kill=kill)
        return rev

    async def aexpire_resource_versions(self, *, kill: bool = False) -> int:
        rev = await self.acompact_etcd()
        await self.arestart_apiserver(kill=kill)
        return rev

    def _etcd(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.etcd_url}/v3/{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            out: dict[str, Any] = json.load(r)
        return out

    # -- client helpers --------------------------------------------------------------------------
    def write_kubeconfig(
        self, path: Path, token: str, user: str = "user", namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig for this cluster that authenticates with a bearer ``token``."""
        return self._kubeconfig(path, user, {"token": token}, namespace)

    def write_client_cert_kubeconfig(self, path: Path, cert: Path, key: Path, user: str) -> Path:
        """Write a kubeconfig for this cluster that authenticates with a client certificate."""
        return self._kubeconfig(path, user, {"client-certificate": str(cert), "client-key": str(key)})

    def _kubeconfig(
        self, path: Path, user: str, credentials: dict[str, str], namespace: str = "default"
    ) -> Path:
        ca = base64.b64encode(self.ca_path.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "thv-dev",
            "clusters": [
                {"name": "thv-dev", "cluster": {"server": self.server, "certificate-authority-data": ca}}
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {"name": "thv-dev", "context": {"cluster": "thv-dev", "user": user, "namespace": namespace}}
            ],
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)
        return path

    def api_request(
        self, method: str, path: str, body: Any | None = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        """A plain HTTP call as the admin (or ``token``): ``(status, decoded JSON body)``.

        Independent of kr8s and thv's client, for bring-up and test fixtures."""
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        req = urllib.request.Request(
            f"{self.server}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {token or self.admin_token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return int(r.status), json.load(r)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return int(e.code), json.loads(raw)
            except ValueError:
                return int(e.code), raw.decode(errors="replace")

    # -- drivers ---------------------------------------------------------------------------------
    def _drive(self, steps: Steps) -> None:
        try:
            wait = next(steps)
            while True:
                try:
                    self._wait_sync(wait)
                except ControlPlaneError as e:
                    wait = steps.throw(e)
                else:
                    wait = next(steps)
        except StopIteration:
            pass

    async def _adrive(self, steps: Steps) -> None:
        try:
            wait = next(steps)
            while True:
                try:
                    await self._wait_async(wait)
                except ControlPlaneError as e:
                    wait = steps.throw(e)
                else:
                    wait = next(steps)
        except StopIteration:
            pass

    def _wait_sync(self, w: Wait) -> None:
        t0 = time.monotonic()
        while True:
            self._check_alive(w)
            if w.check():
                self._log(f"{w.what} ready in {time.monotonic() - t0:.1f}s")
                return
            if time.monotonic() - t0 > w.timeout:
                self._timed_out(w)
            time.sleep(0.1)

    async def _wait_async(self, w: Wait) -> None:
        t0 = time.monotonic()
        while True:
            self._check_alive(w)
            if await anyio.to_thread.run_sync(w.check):
                self._log(f"{w.what} ready in {time.monotonic() - t0:.1f}s")
                return
            if time.monotonic() - t0 > w.timeout:
                self._timed_out(w)
            await anyio.sleep(0.1)

    def _check_alive(self, w: Wait) -> None:
        for proc in self._procs.values():
            rc = proc.popen.poll()
            if rc is None:
                continue
            tail = _tail(proc.log_path)
            during = f" while waiting for {w.what}" if w.what and w.what != proc.name else ""
            msg = f"{proc.name} exited with status {rc}{during}; read {proc.log_path}"
            if proc.name == w.proc and "address already in use" in tail:
                raise _AddressInUse(msg, tail)
            raise ControlPlaneError(msg, tail)

    def _timed_out(self, w: Wait) -> None:
        if w.proc is not None and w.proc in self._procs:
            log = self._procs[w.proc].log_path
            raise ControlPlaneError(f"{w.what} not ready after {w.timeout:.0f}s; read {log}", _tail(log))
        raise ControlPlaneError(f"{w.what} not ready after {w.timeout:.0f}s; logs in {self.dir / 'logs'}")

    def _fail_cleanup(self) -> None:
        """Stop what started; keep the data dir (logs) until the next start reaps it."""
        self._stop(remove_dir=False)
        if self._dir is not None and self._dir.exists():
            self._log(f"start failed; logs kept in {self._dir / 'logs'} (removed by the next start)")

    def _log(self, msg: str) -> None:
        if not self.quiet:
            _say(msg)

    # -- bring-up steps --------------------------------------------------------------------------
    def _start_steps(self, t0: float) -> Steps:
        if self._dir is not None:
            raise ControlPlaneError("this ControlPlane was already started; create a new one")
        self._prepare()
        yield from self._etcd_steps()
        yield from self._apiserver_steps(restart=False)
        self._spawn_controllers()
        self._create_node()
        yield Wait(f"node {NODE_NAME}", self._node_ready, "kwok", 60.0)
        if self._node is not None:
            self._node.prepare()
            yield from self._node.start_steps()
        yield Wait("default ServiceAccount", self._default_sa_exists, "kube-controller-manager", 60.0)
        self.startup_seconds = time.monotonic() - t0
        self._log(
            f"control plane ready in {self.startup_seconds:.1f}s: {self.server}, KUBECONFIG={self.kubeconfig}"
        )

    def _prepare(self) -> None:
        parent = self.base_dir or Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        reap_stale_node()  # first: a killed node's mounts may live in a stale data dir
        for d in reap_stale_dirs(parent):
            self._log(f"removed stale data dir {d}")
        self._dir, self._lock_fd = new_owned_dir(parent, _DIR_PREFIX)
        with _live_lock:
            _live.add(self)
        _install_hooks()
        (self._dir / "logs").mkdir()
        t0 = time.monotonic()
        make_pki(self._dir / "pki")
        self._tokens = {user: os.urandom(24).hex() for user in (ADMIN_USER, *COMPONENT_USERS.values())}
        tokens = self._dir / "tokens.csv"
        tokens.write_text(
            "".join(f'{tok},{user},{user}-uid,"system:masters"\n' for user, tok in self._tokens.items())
        )
        tokens.chmod(0o600)
        (self._dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        if self.node_kind == "real":
            check_host()  # one clear line before anything starts
            self._node = RealNode(self, quiet=self.quiet)
            issue_cert(
                self._dir / "pki",
                "apiserver-kubelet-client",
                common_name="kube-apiserver-kubelet-client",
                organizations=("system:masters",),
            )
        assert self.bin_dir is not None
        stages = sorted((self.bin_dir / "kwok-stages").glob("*.yaml"))
        (self._dir / "kwok.yaml").write_text("\n---\n".join(p.read_text().strip() for p in stages) + "\n")
        self._log(f"PKI, tokens and configs in {self._dir} ({time.monotonic() - t0:.1f}s)")

    def spawn(self, name: str, args: list[str]) -> None:
        """Start a component of this cluster (log, process group, dies with its parent, stopped
        in reverse order by :meth:`stop`)."""
        self._spawn(name, args)

    def http_ok(self, url: str) -> bool:
        """``GET url`` answers 200 (plain HTTP, e.g. a component's health endpoint)."""
        return self._http_ok(url)

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.log_path(name)
        with log_path.open("ab") as log:
            log.write(f"==== {time.strftime('%H:%M:%S')} {' '.join(args)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                preexec_fn=child_setup(os.getpid()),
                start_new_session=True,
            )
        self._procs[name] = _Proc(name, popen, log_path)

    def _terminate(self, proc: _Proc, *, kill: bool = False) -> None:
        p = proc.popen
        if p.poll() is not None:
            return
        grace = 15.0 if proc.name == "kube-apiserver" else 5.0
        try:
            os.killpg(p.pid, signal.SIGKILL if kill else signal.SIGTERM)
            p.wait(grace)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self._log(f"{proc.name} ignored SIGTERM for {grace:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)

    def _http_ok(self, url: str, *, tls: bool = False, token: str | None = None) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_path)) if tls else None
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _etcd_steps(self) -> Steps:
        for attempt in range(3):
            self.etcd_port, self._peer_port = free_port(), free_port()
            c, p = self.etcd_port, self._peer_port
            self._spawn(
                "etcd",
                [
                    str(self._bin("etcd")),
                    "--name=thv",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{c}",
                    f"--advertise-client-urls=http://127.0.0.1:{c}",
                    f"--listen-peer-urls=http://127.0.0.1:{p}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{p}",
                    f"--initial-cluster=thv=http://127.0.0.1:{p}",
                    "--unsafe-no-fsync=true",
                    "--quota-backend-bytes=4294967296",
                    "--log-level=warn",
                ],
            )
            try:
                yield Wait("etcd", lambda: self._http_ok(f"{self.etcd_url}/health"), "etcd", 30.0)
                return
            except _AddressInUse:
                if attempt == 2:
                    raise
                self._log("etcd: port taken meanwhile; retrying on other ports")
                shutil.rmtree(self.dir / "etcd", ignore_errors=True)

    def _apiserver_args(self) -> list[str]:
        pki = self.dir / "pki"
        return [
            str(self._bin("kube-apiserver")),
            f"--etcd-servers={self.etcd_url}",
            *self._address_args(),
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={self.dir / 'tokens.csv'}",
            f"--authorization-mode={'Node,RBAC' if self.node_kind == 'real' else 'RBAC'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # no node-lifecycle controller: a not-ready taint added at node creation would stay
            "--disable-admission-plugins=TaintNodesByCondition",
            f"--audit-policy-file={self.dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-maxsize=0",
            # no throttling on a test cluster
            "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0",
            "--enable-priority-and-fairness=false",
            # on SIGTERM close long-running requests (watches) after 2 s instead of 60 s
            "--shutdown-send-retry-after=true",
            *self.extra_apiserver_args,
        ]

    def _address_args(self) -> list[str]:
        if self.node_kind != "real":
            return [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # loopback advertise address: don't write it into the `kubernetes` Service endpoints
                "--endpoint-reconciler-type=none",
            ]
        pki = self.dir / "pki"
        return [
            # pods reach the apiserver through the `kubernetes` Service at the node's bridge address
            "--bind-address=0.0.0.0",
            f"--advertise-address={NODE_IP}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _apiserver_steps(self, *, restart: bool) -> Steps:
        if restart:
            proc = self._procs.get("kube-apiserver")
            if proc is not None and proc.popen.poll() is None:
                raise ControlPlaneError("kube-apiserver is running; stop it first")
        for attempt in range(1 if restart else 3):
            if not restart:
                self.port = free_port()
                self._write_kubeconfigs()
            self._spawn("kube-apiserver", self._apiserver_args())
            try:
                yield Wait(
                    "kube-apiserver",
                    lambda: self._http_ok(f"{self.server}/readyz", tls=True, token=self.admin_token),
                    "kube-apiserver",
                    90.0,
                )
                return
            except _AddressInUse:
                if restart or attempt == 2:
                    raise
                self._log("kube-apiserver: port taken meanwhile; retrying on another port")

    def _write_kubeconfigs(self) -> None:
        self.write_kubeconfig(self.kubeconfig, self._tokens[ADMIN_USER], ADMIN_USER)
        for component, user in COMPONENT_USERS.items():
            self.write_kubeconfig(self.dir / f"{component}.kubeconfig", self._tokens[user], user)

    def restart_controller_manager(self) -> None:
        """Restart kube-controller-manager (SIGTERM, then start again with the same flags).

        Its garbage collector only learns about resources that appear after it started (new
        CRDs) at its 30 s discovery re-sync; until then objects owned by a custom resource
        are collected late. Restarting right after installing CRDs makes collection immediate.
        Call from a thread that outlives the process (PR_SET_PDEATHSIG is per thread)."""
        with self._mutex:
            proc = self._procs.get("kube-controller-manager")
            if proc is not None:
                self._terminate(proc)
            self._spawn("kube-controller-manager", self._kcm_args())
        self._log("kube-controller-manager restarted")

    def _kcm_args(self) -> list[str]:
        pki = self.dir / "pki"
        return [
            str(self._bin("kube-controller-manager")),
            f"--kubeconfig={self.dir / 'kube-controller-manager.kubeconfig'}",
            f"--controllers={','.join(CONTROLLERS + (REAL_NODE_CONTROLLERS if self.node_kind == 'real' else ()))}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--secure-port=0",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--concurrent-gc-syncs=20",
        ]

    def _spawn_controllers(self) -> None:
        kc = {c: str(self.dir / f"{c}.kubeconfig") for c in COMPONENT_USERS}
        self._spawn("kube-controller-manager", self._kcm_args())
        self._spawn(
            "kube-scheduler",
            [
                str(self._bin("kube-scheduler")),
                f"--kubeconfig={kc['kube-scheduler']}",
                "--leader-elect=false",
                "--secure-port=0",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(self._bin("kwok")),
                f"--kubeconfig={kc['kwok']}",
                # with a real node, kwok must leave it (and its pods) alone
                *(
                    ["--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake"]
                    if self.node_kind == "real"
                    else ["--manage-all-nodes=true"]
                ),
                f"--config={self.dir / 'kwok.yaml'}",
            ],
        )

    def _create_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        if self.node_kind == "real":  # only pods that tolerate it land on the fake node
            node["spec"] = {"taints": [{"key": "thv.dev/fake-node", "value": "true", "effect": "NoSchedule"}]}
        status, body = self.api_request("POST", "/api/v1/nodes", node)
        if status != 201:
            raise ControlPlaneError(f"creating node {NODE_NAME}: HTTP {status}: {body}")

    def _node_ready(self) -> bool:
        status, node = self.api_request("GET", f"/api/v1/nodes/{NODE_NAME}")
        conds = node.get("status", {}).get("conditions", []) if status == 200 else []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def _default_sa_exists(self) -> bool:
        return self.api_request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

    def _bin(self, name: str) -> Path:
        assert self.bin_dir is not None
        return self.bin_dir / name


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (or a zombie); True if it exited within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (not yet reaped by its parent) is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return re.sub(r"^.*\) ", "", stat, flags=re.S)[:1] != "Z"
    except OSError:
        return True


__all__ = [
    "ADMIN_USER",
    "COMPONENT_USERS",
    "NODE_NAME",
    "ControlPlane",
    "ControlPlaneError",
    "build_binaries",
    "cache_root",
    "free_port",
    "reap_stale_dirs",
]
