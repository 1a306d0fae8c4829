"""thv against the upstream ToolHive operator (v0.3.11), measured in the same run.

Both operators run as child processes (``python -m thv operator run --use-configmap`` and the
upstream ``thv-operator`` built by ``tools/toolhive/build.sh``), one at a time, each under its
own ServiceAccount (thv: the ClusterRole generated from thv's RBAC declarations; upstream: its
chart's ClusterRole), against the same CRDs (thv's), in ConfigMap mode, scoped to the namespace
under test, on the real local control plane (kwok makes the pods Ready). Writes are counted
from the apiserver audit log by user; objects are observed with list+watch streams (the
benchmark's own reads are not in the audit log: the policy drops get/list/watch).

Figures
  propagation   one MCPExternalAuthConfig change (spec.tokenExchange.audience) → the time until
                all N referencing servers' ``<name>-runconfig`` ConfigMaps carry the new audience,
                and (thv only: upstream v0.3.11 never changes a Deployment on a config change)
                until all N Deployments' pod templates carry the new config hash; the operator's
                writes from the change until it has been quiet for 5 s. Median of ``--reps``.
  idle/resync   writes during a 45 s window with nothing changed (thv runs with
                ``--resync-period 30``, so the window holds at least one full resync; upstream's
                SyncPeriod is controller-runtime's default of 10 h, so its window shows only its
                own requeues), and writes during the first 60 s after a restart of the operator
                process (both: the restart re-lists and re-reconciles every object).
  cold start    N MCPServers exist (with their config and Secret) before the operator starts;
                time from process start until all N runconfig ConfigMaps and Deployments exist,
                and until all N MCPServers report ``status.phase: Running``; peak RSS (VmHWM);
                writes per server. A fresh control plane per operator and N, bounded by
                ``--cold-timeout``; an unfinished run is recorded with how far it got.

  floor         the same figures for the lowest-overhead writer built here (``tools/floorwriter``,
                :mod:`thvtest.floor`): thv's own writes of the run, taken from the audit log (the
                policy logs the operators' write bodies), replayed with client-go's transport over
                one HTTP/2 connection, up to 256 in flight, as thv's ServiceAccount. Propagation:
                in thv's namespace after thv has stopped, per repetition the same config change
                followed at once by thv's writes for it; cold start: a fresh control plane with
                the same servers, thv's cold-start writes (a "Running" status only once its
                Deployment is available). Reported as thv ÷ floor; ``--no-floor`` skips it.
  plot          ``docs/img/compare.png``: propagation and cold-start time against N (``--plot``).

Run: ``.venv/bin/python benchmarks/bench_compare.py`` (full, long), ``--quick`` (smoke),
``--only thv|peer``, ``--n 1,100`` (propagation sizes), ``--cold-n 1000``. Prints tables and the
growth with N, and writes ``benchmarks/results/compare.txt`` (not with ``--quick`` unless
``--out`` is given).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import http.client
import json
import os
import platform
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from devcluster import ControlPlane
from devcluster.controlplane import free_port
from thv.crdgen import crd_objects
from thvtest import manifests
from thvtest.floor import AUDIT_POLICY, FloorProcess, build_floor, for_cluster, record, write_ops
from thvtest.harness import OPERATOR_USER, operator_kubeconfig
from thvtest.peer import (
    PEER_USER,
    RUNNER_IMAGE,
    TOOLHIVE_VERSION,
    OperatorProcess,
    apply_crds,
    build_peer,
    install_peer_crds,
    peer_kubeconfig,
    peer_process,
)

ROOT = Path(__file__).resolve().parents[1]
G = "/apis/toolhive.stacklok.dev/v1alpha1/namespaces"
HASH_ANN = "toolhive.stacklok.dev/externalauthconfig-hash"
OPERATORS = ("thv", "peer")
USERS = {"thv": OPERATOR_USER, "peer": PEER_USER, "floor": OPERATOR_USER}
THV_RESYNC = 30.0
IDLE_WINDOW = 45.0
RESTART_WINDOW = 60.0
QUIET = 5.0
PRE_WINDOW = 10.0


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- HTTP ----------------------------------------------------------------------------------------
class Api:
    """Admin HTTP client with one keep-alive connection per thread (for bulk creates)."""

    def __init__(self, cp: ControlPlane) -> None:
        u = urlparse(cp.server)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 443
        self.token = cp.admin_token
        self.ctx = ssl.create_default_context(cafile=str(cp.ca_path))
        self._local = threading.local()

    def connect(self, timeout: float | None = 60) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": ctype}
        for attempt in range(5):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self.connect()
            try:
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"{method} {path}: connection failures")


class Tracker:
    """Counts the objects of a watched collection that satisfy ``pred``; ``done_at`` is the
    monotonic time of the event that first brought the count to ``target``."""

    def __init__(self, pred: Callable[[dict[str, Any]], bool], target: int) -> None:
        self.pred = pred
        self.target = target
        self.ok: set[str] = set()
        self.done_at: float | None = None

    def feed(self, name: str, obj: dict[str, Any] | None, now: float) -> None:
        if obj is not None and self.pred(obj):
            self.ok.add(name)
        else:
            self.ok.discard(name)
        if self.done_at is None and len(self.ok) >= self.target:
            self.done_at = now

    @property
    def count(self) -> int:
        return len(self.ok)


class Watch:
    """list+watch of one collection in a background thread; feeds :class:`Tracker` s."""

    def __init__(self, api: Api, path: str) -> None:
        self.api = api
        self.path = path
        self.objects: dict[str, dict[str, Any]] = {}
        self.trackers: list[Tracker] = []
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        if not self.synced.wait(120):
            raise TimeoutError(f"initial list of {self.path}")
        return self

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def track(self, pred: Callable[[dict[str, Any]], bool], target: int) -> Tracker:
        t = Tracker(pred, target)
        with self.lock:
            now = time.monotonic()
            for name, obj in self.objects.items():
                t.feed(name, obj, now)
            if t.done_at is None and target <= 0:
                t.done_at = now
            self.trackers.append(t)
        return t

    def untrack(self, t: Tracker) -> None:
        with self.lock, contextlib.suppress(ValueError):
            self.trackers.remove(t)

    def _apply(self, etype: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        now = time.monotonic()
        with self.lock:
            if etype == "DELETED":
                self.objects.pop(name, None)
                cur = None
            else:
                self.objects[name] = obj
                cur = obj
            for t in self.trackers:
                t.feed(name, cur, now)

    def _list(self) -> str:
        items: dict[str, dict[str, Any]] = {}
        cont = ""
        while True:
            q = f"?limit=2000&continue={cont}" if cont else "?limit=2000"
            status, body = self.api.request("GET", self.path + q)
            if status != 200:
                raise RuntimeError(f"list {self.path}: HTTP {status}: {body}")
            for o in body["items"]:
                items[o["metadata"]["name"]] = o
            cont = body["metadata"].get("continue") or ""
            if not cont:
                rv: str = body["metadata"]["resourceVersion"]
                break
        now = time.monotonic()
        with self.lock:
            gone = set(self.objects) - set(items)
            for name in gone:
                self.objects.pop(name)
                for t in self.trackers:
                    t.feed(name, None, now)
            for name, o in items.items():
                self.objects[name] = o
                for t in self.trackers:
                    t.feed(name, o, now)
        return rv

    def _run(self) -> None:
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                    self.synced.set()
                conn = self._conn = self.api.connect(timeout=None)
                conn.request(
                    "GET",
                    f"{self.path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}",
                    headers={"Authorization": f"Bearer {self.api.token}"},
                )
                r = conn.getresponse()
                if r.status != 200:
                    r.read()
                    rv = ""
                    continue
                while True:
                    line = r.readline()
                    if not line:
                        break
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        rv = ""  # 410 Gone and the like: relist
                        break
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion") or rv
                    if ev["type"] != "BOOKMARK":
                        self._apply(ev["type"], obj)
                conn.close()
            except (http.client.HTTPException, OSError, ValueError, RuntimeError):
                if self._stop.is_set():
                    return
                time.sleep(0.5)


# -- scenario ------------------------------------------------------------------------------------
def extauth(audience: str) -> dict[str, Any]:
    return manifests.extauth(
        "auth", audience=audience, secret=("s", "k"), tokenUrl="https://idp.example.com/token", clientId="c"
    )


def server(i: int) -> dict[str, Any]:
    return manifests.mcpserver(
        f"s{i}",
        external_auth="auth",
        image="example.invalid/mcp:1",
        transport=None,
        port=None,
        permissionProfile=None,
    )


def setup_namespace(cp: ControlPlane, api: Api, ns: str, n: int, label: str) -> None:
    """Namespace, its default ServiceAccount, the Secret, the config and N MCPServers."""
    status, body = cp.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    if status != 201:
        raise RuntimeError(f"namespace {ns}: HTTP {status}: {body}")
    deadline = time.monotonic() + 60
    while cp.api_request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"default ServiceAccount in {ns}")
        time.sleep(0.2)
    cp.api_request(
        "POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    status, body = cp.api_request("POST", f"{G}/{ns}/mcpexternalauthconfigs", extauth("aud-0"))
    if status != 201:
        raise RuntimeError(f"config: HTTP {status}: {body}")
    t0 = time.monotonic()
    done = 0
    last = t0

    def create(i: int) -> None:
        status, body = api.request("POST", f"{G}/{ns}/mcpservers", server(i))
        if status not in (201, 409):
            raise RuntimeError(f"MCPServer s{i}: HTTP {status}: {body}")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in pool.map(create, range(n)):
            done += 1
            if time.monotonic() - last > 10:
                last = time.monotonic()
                say(f"{label}: created {done}/{n} MCPServers")
    say(f"{label}: created {n} MCPServers in {time.monotonic() - t0:.1f}s")


def count_writes(cp: ControlPlane, mark: int, user: str, ns: str) -> collections.Counter[str]:
    by: collections.Counter[str] = collections.Counter()
    for w in cp.audit.writes(mark, user=user, namespace=ns):
        ref = w.object_ref
        by[f"{ref.resource}/{ref.subresource}" if ref.subresource else ref.resource] += 1
    return by


def wait_quiet(
    cp: ControlPlane, mark: int, user: str, ns: str, *, quiet: float, cap: float
) -> tuple[int, bool]:
    """Wait until ``user`` made no write in ``ns`` for ``quiet`` seconds (at most ``cap``);
    returns (writes since ``mark``, whether it went quiet)."""
    t0 = time.monotonic()
    last_n, last_change = -1, t0
    while True:
        n = len(cp.audit.writes(mark, user=user, namespace=ns))
        now = time.monotonic()
        if n != last_n:
            last_n, last_change = n, now
        elif now - last_change >= quiet:
            return n, True
        if now - t0 >= cap:
            return n, False
        time.sleep(0.5)


def wait_trackers(
    trackers: Sequence[tuple[str, Tracker]],
    timeout: float,
    label: str,
    proc: OperatorProcess | FloorProcess,
    every: float = 5.0,
) -> bool:
    """Wait until every tracker is done (True) or ``timeout`` (False), printing progress."""
    t0 = time.monotonic()
    last = t0
    while True:
        if all(t.done_at is not None for _, t in trackers):
            return True
        proc.check()
        now = time.monotonic()
        if now - t0 > timeout:
            return False
        if now - last >= every:
            last = now
            prog = ", ".join(f"{t.count}/{t.target} {what}" for what, t in trackers)
            say(f"{label}: {prog} ({now - t0:.0f}s)")
        time.sleep(0.05)


# -- operators -----------------------------------------------------------------------------------
def thv_process(kubeconfig: Path, log_path: Path, ns: str, resync: float) -> OperatorProcess:
    port = free_port()
    python = ROOT / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "WATCH_NAMESPACE")}
    env.update({"TOOLHIVE_RUNNER_IMAGE": RUNNER_IMAGE, "THV_LOG_LEVEL": "INFO"})
    argv = [
        str(python if python.exists() else Path(sys.executable)),
        "-m",
        "thv",
        "operator",
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--use-configmap",
        "-n",
        ns,
        "--metrics-bind-address",
        f"127.0.0.1:{port}",
        "--resync-period",
        str(resync),
    ]
    return OperatorProcess(
        name="thv operator",
        argv=argv,
        env=env,
        log_path=log_path,
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )


@dataclass
class Cluster:
    cp: ControlPlane
    api: Api
    tmp: Path
    kubeconfigs: dict[str, Path]
    peer_bin: Path | None
    upstream_only_crds: list[str]

    def process(self, op: str, ns: str, tag: str, resync: float = THV_RESYNC) -> OperatorProcess:
        log = self.tmp / f"{op}-{tag}.log"
        if op == "thv":
            return thv_process(self.kubeconfigs["thv"], log, ns, resync)
        assert self.peer_bin is not None
        return peer_process(self.peer_bin, self.kubeconfigs["peer"], log, namespaces=[ns])


@contextlib.contextmanager
def cluster(ops: Sequence[str], peer_bin: Path | None) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="thv-compare-") as tmp:
        # the operators' write bodies are logged (both alike) so the floor can replay thv's writes
        policy = Path(tmp) / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        with ControlPlane(quiet=True, extra_apiserver_args=[f"--audit-policy-file={policy}"]) as cp:
            yield _cluster(cp, Path(tmp), ops, peer_bin)


def _cluster(cp: ControlPlane, tmp: Path, ops: Sequence[str], peer_bin: Path | None) -> Cluster:
    extra = install_peer_crds(cp) if "peer" in ops else []
    if "peer" not in ops:
        apply_crds(cp, crd_objects())
    kcs: dict[str, Path] = {}
    if "thv" in ops:
        kcs["thv"] = operator_kubeconfig(cp, tmp)
    if "peer" in ops:
        kcs["peer"] = peer_kubeconfig(cp, tmp)
    return Cluster(cp, Api(cp), tmp, kcs, peer_bin, extra)


# -- propagation, idle, restart ------------------------------------------------------------------
@dataclass
class PropResult:
    op: str
    n: int
    cm_latency: list[float] = field(default_factory=list)
    dep_latency: list[float] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    by_resource: list[dict[str, int]] = field(default_factory=list)
    quiet: list[bool] = field(default_factory=list)
    rep_background: list[float] = field(default_factory=list)
    corrected: list[float | None] = field(default_factory=list)
    """Writes minus background rate x window; ``None`` when the background is over half the total."""
    background_rate: float = 0.0
    idle_writes: int = 0
    idle_by: dict[str, int] = field(default_factory=dict)
    restart_writes: int = 0
    restart_by: dict[str, int] = field(default_factory=dict)
    restart_ready: float = 0.0
    setup_seconds: float = 0.0
    settled: bool = True
    load: list[float] = field(default_factory=list)
    """1-minute load average at the end of each repetition."""
    note: str = ""


def runconfig_has(audience: str) -> Callable[[dict[str, Any]], bool]:
    needle = f'"audience": "{audience}"'
    compact = f'"audience":"{audience}"'

    def pred(cm: dict[str, Any]) -> bool:
        if not cm["metadata"]["name"].endswith("-runconfig"):
            return False
        data = (cm.get("data") or {}).get("runconfig.json", "")
        return needle in data or compact in data

    return pred


def template_hash(dep: dict[str, Any]) -> str | None:
    ann = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
    value = ann.get(HASH_ANN)
    return value if isinstance(value, str) else None


def propagation(
    c: Cluster,
    op: str,
    n: int,
    reps: int,
    *,
    timeout: float,
    settle_cap: float,
    floor_bin: Path | None = None,
    idle: bool = True,
) -> list[PropResult]:
    """The operator's propagation result; for thv with ``floor_bin`` also the floor's, measured
    in the same namespace after thv (see :func:`floor_propagation`)."""
    ns = f"{op}-p{n}"
    res = PropResult(op, n)
    recorded: list[tuple[str, int, int]] = []  # (audience, audit mark before, after) per rep
    label = f"{op} N={n}"
    user = USERS[op]
    t_setup = time.monotonic()
    setup_namespace(c.cp, c.api, ns, n, label)
    cms = Watch(c.api, f"/api/v1/namespaces/{ns}/configmaps").start()
    deps = Watch(c.api, f"/apis/apps/v1/namespaces/{ns}/deployments").start()
    proc = c.process(op, ns, f"p{n}")
    try:
        with proc:
            proc.wait_ready(180)
            say(f"{label}: operator ready in {proc.ready_at - proc.started_at:.1f}s; reconciling {n} servers")
            first = [
                ("configmaps", cms.track(runconfig_has("aud-0"), n)),
                ("deployments", deps.track(lambda d: True, n)),
            ]
            if not wait_trackers(first, timeout, f"{label} initial", proc):
                res.note = "initial reconcile timed out"
                res.settled = False
                return [res]
            mark0 = c.cp.audit.mark()
            _, res.settled = wait_quiet(c.cp, 0, user, ns, quiet=QUIET, cap=settle_cap)
            res.setup_seconds = time.monotonic() - t_setup
            # background write rate just before the changes (upstream's requeue loop)
            mark = c.cp.audit.mark()
            time.sleep(10)
            res.background_rate = len(c.cp.audit.writes(mark, user=user, namespace=ns)) / 10
            say(
                f"{label}: set up in {res.setup_seconds:.0f}s (quiet: {res.settled}); "
                f"background {res.background_rate:.1f} writes/s; {len(c.cp.audit.writes(mark0, user=user, namespace=ns))} writes since reconciled"
            )
            for rep in range(1, reps + 1):
                aud = f"aud-{rep}"
                with deps.lock:
                    before = {name: template_hash(d) for name, d in deps.objects.items()}
                tracks = [("configmaps updated", cms.track(runconfig_has(aud), n))]
                if op == "thv":

                    def rolled_pred(d: dict[str, Any], b: dict[str, str | None] = before) -> bool:
                        return template_hash(d) not in (None, b.get(d["metadata"]["name"]))

                    rolled = deps.track(rolled_pred, n)
                    tracks.append(("deployments rolled", rolled))
                # the operator's own background writes just before (upstream's requeue loop)
                mark = c.cp.audit.mark()
                time.sleep(PRE_WINDOW)
                bg = len(c.cp.audit.writes(mark, user=user, namespace=ns)) / PRE_WINDOW
                mark = c.cp.audit.mark()
                t0 = time.monotonic()
                status, body = c.cp.api_request(
                    "PATCH",
                    f"{G}/{ns}/mcpexternalauthconfigs/auth",
                    {"spec": {"tokenExchange": {"audience": aud}}},
                )
                if status != 200:
                    raise RuntimeError(f"patch config: HTTP {status}: {body}")
                ok = wait_trackers(tracks, timeout, f"{label} rep {rep}/{reps}", proc)
                if not ok:
                    res.note = f"rep {rep}: not propagated within {timeout:.0f}s"
                    break
                res.load.append(os.getloadavg()[0])
                cm_done = tracks[0][1].done_at
                assert cm_done is not None
                res.cm_latency.append(cm_done - t0)
                if op == "thv":
                    dep_done = tracks[1][1].done_at
                    assert dep_done is not None
                    res.dep_latency.append(max(dep_done, cm_done) - t0)
                total, quiet = wait_quiet(c.cp, mark, user, ns, quiet=QUIET, cap=settle_cap)
                recorded.append((aud, mark, c.cp.audit.mark()))
                by = count_writes(c.cp, mark, user, ns)
                total = sum(by.values())
                window = time.monotonic() - t0 - (QUIET if quiet else 0.0)
                res.rep_background.append(bg)
                res.corrected.append(max(0.0, total - bg * window) if bg * window <= total / 2 else None)
                res.writes.append(total)
                res.by_resource.append(dict(by))
                res.quiet.append(quiet)
                cms.untrack(tracks[0][1])
                if op == "thv":
                    deps.untrack(tracks[1][1])
                say(
                    f"{label} rep {rep}/{reps}: configmaps {res.cm_latency[-1]:.2f}s"
                    + (f", deployments {res.dep_latency[-1]:.2f}s" if op == "thv" else "")
                    + f", {total} writes{'' if quiet else ' (not quiet)'}"
                    + (f" (background {bg:.1f}/s before: ≈{num(res.corrected[-1], 0)} net)" if bg else "")
                )
            if idle:
                # idle: nothing changes for IDLE_WINDOW (thv: includes a periodic resync)
                say(f"{label}: idle window {IDLE_WINDOW:.0f}s")
                mark = c.cp.audit.mark()
                time.sleep(IDLE_WINDOW)
                by = count_writes(c.cp, mark, user, ns)
                res.idle_writes, res.idle_by = sum(by.values()), dict(by)
        if idle:
            # restart: a new process re-lists and re-reconciles everything
            say(f"{label}: restarting the operator")
            mark = c.cp.audit.mark()
            proc2 = c.process(op, ns, f"p{n}-restart")
            with proc2:
                res.restart_ready = proc2.wait_ready(180)
                time.sleep(RESTART_WINDOW)
                by = count_writes(c.cp, mark, user, ns)
                res.restart_writes, res.restart_by = sum(by.values()), dict(by)
            say(
                f"{label}: idle {res.idle_writes} writes in {IDLE_WINDOW:.0f}s, "
                f"restart {res.restart_writes} writes in {RESTART_WINDOW:.0f}s after ready"
            )
        if floor_bin is not None and op == "thv":
            return [res, floor_propagation(c, n, recorded, floor_bin, cms, deps, timeout=timeout)]
    finally:
        cms.stop()
        deps.stop()
    return [res]


def floor_propagation(
    c: Cluster,
    n: int,
    recorded: Sequence[tuple[str, int, int]],
    floor_bin: Path,
    cms: Watch,
    deps: Watch,
    *,
    timeout: float,
) -> PropResult:
    """The floor in thv's namespace, with thv stopped: per repetition of thv, the same config
    change (to the same audience) followed at once by thv's writes for it, replayed by the
    floor writer as thv's ServiceAccount; timed and counted like thv. Repetition k starts from
    the state of repetition k-1 (the first from thv's last), so each replay changes every object."""
    ns, label = f"thv-p{n}", f"floor N={n}"
    res = PropResult("floor", n)
    if len(recorded) < 2:
        # the live objects hold the last repetition's state: replaying it would change nothing
        res.note = "floor needs --reps >= 2 (the live state equals the only recorded change)"
        say(f"{label}: skipped: {res.note}")
        return res
    for rep, (aud, start, end) in enumerate(recorded, 1):
        ops = record(c.cp.audit_log_path, start, end, OPERATOR_USER, ns)
        path = write_ops(ops, c.tmp / f"floor-p{n}-{rep}.jsonl")
        with deps.lock:
            before = {name: template_hash(d) for name, d in deps.objects.items()}

        def rolled_pred(d: dict[str, Any], b: dict[str, str | None] = before) -> bool:
            return template_hash(d) not in (None, b.get(d["metadata"]["name"]))

        tracks = [
            ("configmaps updated", cms.track(runconfig_has(aud), n)),
            ("deployments rolled", deps.track(rolled_pred, n)),
        ]
        with FloorProcess(
            floor_bin, c.kubeconfigs["thv"], path, log_path=c.tmp / f"floor-p{n}-{rep}.log"
        ) as fp:
            fp.wait_ready()
            mark = c.cp.audit.mark()
            t0 = time.monotonic()
            status, body = c.cp.api_request(
                "PATCH",
                f"{G}/{ns}/mcpexternalauthconfigs/auth",
                {"spec": {"tokenExchange": {"audience": aud}}},
            )
            if status != 200:
                raise RuntimeError(f"patch config: HTTP {status}: {body}")
            fp.go()
            ok = wait_trackers(tracks, timeout, f"{label} rep {rep}/{len(recorded)}", fp)
            summary = fp.result() if ok else {}
        cms.untrack(tracks[0][1])
        deps.untrack(tracks[1][1])
        if not ok:
            res.note = f"rep {rep}: not propagated within {timeout:.0f}s"
            break
        cm_done, dep_done = tracks[0][1].done_at, tracks[1][1].done_at
        assert cm_done is not None and dep_done is not None
        res.cm_latency.append(cm_done - t0)
        res.dep_latency.append(max(cm_done, dep_done) - t0)
        res.load.append(os.getloadavg()[0])
        by = count_writes(c.cp, mark, OPERATOR_USER, ns)
        res.writes.append(sum(by.values()))
        res.by_resource.append(dict(by))
        res.quiet.append(True)
        if summary.get("failed") or summary.get("errors"):
            res.note += f" rep {rep}: {summary.get('failed')} failed writes {summary.get('errors')};"
        say(
            f"{label} rep {rep}/{len(recorded)}: configmaps {res.cm_latency[-1]:.2f}s, deployments "
            f"{res.dep_latency[-1]:.2f}s, {res.writes[-1]} writes of {len(ops)} replayed "
            f"(writer busy {summary.get('seconds', 0):.2f}s)"
        )
    return res


# -- cold start ----------------------------------------------------------------------------------
@dataclass
class ColdResult:
    op: str
    n: int
    create_seconds: float = 0.0
    ready_seconds: float = 0.0
    objects_seconds: float | None = None
    running_seconds: float | None = None
    cms: int = 0
    deps: int = 0
    running: int = 0
    peak_rss_mib: float = 0.0
    rss_mib: float = 0.0
    writes: int = 0
    by_resource: dict[str, int] = field(default_factory=dict)
    timeout: float = 0.0
    load: float = 0.0
    """1-minute load average at the end."""
    note: str = ""


def cold_watches(api: Api, ns: str, n: int) -> tuple[list[Watch], tuple[Tracker, Tracker, Tracker]]:
    """The cold-start observation of namespace ``ns``: list+watch streams of its ConfigMaps,
    Deployments and MCPServers, and trackers of N runconfig ConfigMaps with the first audience,
    N Deployments and N servers ``Running`` (stop the watches when done)."""
    cms = Watch(api, f"/api/v1/namespaces/{ns}/configmaps").start()
    deps = Watch(api, f"/apis/apps/v1/namespaces/{ns}/deployments").start()
    srv = Watch(api, f"{G}/{ns}/mcpservers").start()
    return [cms, deps, srv], (
        cms.track(runconfig_has("aud-0"), n),
        deps.track(lambda d: True, n),
        srv.track(lambda s: (s.get("status") or {}).get("phase") == "Running", n),
    )


def cold_start(
    ops: Sequence[str],
    op: str,
    n: int,
    peer_bin: Path | None,
    timeout: float,
    record_into: list[dict[str, Any]] | None = None,
) -> ColdResult:
    """One cold start; ``record_into`` receives the operator's writes (floor ops)."""
    res = ColdResult(op, n, timeout=timeout)
    label = f"{op} cold N={n}"
    say(f"{label}: fresh control plane")
    with cluster([op], peer_bin) as c:
        ns = f"{op}-c{n}"
        t = time.monotonic()
        setup_namespace(c.cp, c.api, ns, n, label)
        res.create_seconds = time.monotonic() - t
        watches, (cm_t, dep_t, run_t) = cold_watches(c.api, ns, n)
        try:
            mark = c.cp.audit.mark()
            proc = c.process(op, ns, f"c{n}", resync=300.0)
            with proc:
                res.ready_seconds = proc.wait_ready(600)
                say(f"{label}: operator ready in {res.ready_seconds:.1f}s")
                wait_trackers(
                    [("configmaps", cm_t), ("deployments", dep_t), ("servers Running", run_t)],
                    timeout - res.ready_seconds,
                    label,
                    proc,
                    every=15.0,
                )
                t0 = proc.started_at
                if cm_t.done_at is not None and dep_t.done_at is not None:
                    res.objects_seconds = max(cm_t.done_at, dep_t.done_at) - t0
                if run_t.done_at is not None:
                    res.running_seconds = run_t.done_at - t0
                res.cms, res.deps, res.running = cm_t.count, dep_t.count, run_t.count
                mem = proc.memory()
                if mem is not None:
                    res.peak_rss_mib, res.rss_mib = mem.hwm_mib, mem.rss_mib
                if res.running_seconds is None:
                    res.note = (
                        f"not at steady state after {timeout:.0f}s: {res.cms}/{n} configmaps, "
                        f"{res.deps}/{n} deployments, {res.running}/{n} Running"
                    )
                if res.running_seconds is not None:
                    wait_quiet(c.cp, mark, USERS[op], ns, quiet=QUIET, cap=30.0)
            by = count_writes(c.cp, mark, USERS[op], ns)
            res.writes, res.by_resource = sum(by.values()), dict(by)
            res.load = os.getloadavg()[0]
            if record_into is not None:
                record_into.extend(record(c.cp.audit_log_path, mark, None, USERS[op], ns))
        finally:
            for w in watches:
                w.stop()
    say(
        f"{label}: objects {fmt_s(res.objects_seconds)}, Running {fmt_s(res.running_seconds)}, "
        f"peak RSS {res.peak_rss_mib:.0f} MiB, {res.writes} writes {res.note}"
    )
    return res


def floor_cold(n: int, recorded: list[dict[str, Any]], floor_bin: Path, timeout: float) -> ColdResult:
    """The floor's cold start: a fresh control plane set up as for thv (same namespace, servers,
    identity), then the floor writer sends thv's recorded cold-start writes (ownerReferences
    mapped to this cluster's UIDs; each "Running" status write waits until its Deployment is
    available, as thv's does); timed from the writer's process start, like an operator's."""
    res = ColdResult("floor", n, timeout=timeout)
    label = f"floor cold N={n}"
    say(f"{label}: fresh control plane")
    with cluster(["thv"], None) as c:
        ns = f"thv-c{n}"  # thv's namespace: the recorded request URIs name it
        t = time.monotonic()
        setup_namespace(c.cp, c.api, ns, n, label)
        res.create_seconds = time.monotonic() - t
        watches, (cm_t, dep_t, run_t) = cold_watches(c.api, ns, n)
        srv = watches[2]
        try:
            uids: dict[tuple[str, str], str] = {}
            with srv.lock:
                for name, o in srv.objects.items():
                    uids[("MCPServer", name)] = o["metadata"]["uid"]
            status, body = c.api.request("GET", f"{G}/{ns}/mcpexternalauthconfigs/auth")
            if status == 200:
                uids[("MCPExternalAuthConfig", "auth")] = body["metadata"]["uid"]
            path = write_ops(for_cluster(recorded, uids, gate_running=True), c.tmp / f"floor-c{n}.jsonl")
            mark = c.cp.audit.mark()
            with FloorProcess(
                floor_bin, c.kubeconfigs["thv"], path, gate_namespace=ns, log_path=c.tmp / f"floor-c{n}.log"
            ) as fp:
                res.ready_seconds = fp.wait_ready()
                fp.go()
                wait_trackers(
                    [("configmaps", cm_t), ("deployments", dep_t), ("servers Running", run_t)],
                    timeout - res.ready_seconds,
                    label,
                    fp,
                    every=15.0,
                )
                t0 = fp.started_at
                if cm_t.done_at is not None and dep_t.done_at is not None:
                    res.objects_seconds = max(cm_t.done_at, dep_t.done_at) - t0
                if run_t.done_at is not None:
                    res.running_seconds = run_t.done_at - t0
                res.cms, res.deps, res.running = cm_t.count, dep_t.count, run_t.count
                summary = fp.result(timeout=60) if run_t.done_at is not None else {"errors": ["killed"]}
                res.peak_rss_mib = res.rss_mib = fp.peak_rss_mib
            if res.running_seconds is None:
                res.note = (
                    f"not at steady state after {timeout:.0f}s: {res.cms}/{n} configmaps, "
                    f"{res.deps}/{n} deployments, {res.running}/{n} Running"
                )
            if summary.get("failed") or summary.get("errors"):
                res.note += f" {summary.get('failed')} failed writes {summary.get('errors')}"
            by = count_writes(c.cp, mark, OPERATOR_USER, ns)
            res.writes, res.by_resource = sum(by.values()), dict(by)
            res.load = os.getloadavg()[0]
        finally:
            for w in watches:
                w.stop()
    say(
        f"{label}: objects {fmt_s(res.objects_seconds)}, Running {fmt_s(res.running_seconds)}, "
        f"{res.writes} writes of {len(recorded)} replayed {res.note}"
    )
    return res


# -- report --------------------------------------------------------------------------------------
def fmt_s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}s" if v < 10 else f"{v:.0f}s"


def med(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def ratio(peer: float | None, thv: float | None) -> str:
    if peer is None or thv is None:
        return "—"
    if thv == 0:
        return "∞" if peer > 0 else "1.0"
    return f"{peer / thv:.1f}x"


def num(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def by_str(by: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "—"


def machine() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
    ).stdout.strip()
    gov = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    return [
        f"machine: {os.cpu_count()} cores ({cpu}), {mem} RAM, load average at start {os.getloadavg()[0]:.2f}",
        f"versions: thv {commit}{' (src modified)' if dirty else ''}, toolhive {TOOLHIVE_VERSION}, "
        f"Kubernetes v1.36.3 (kwok v0.8.0), {gov}, Python {platform.python_version()}",
    ]


def _med_writes(r: PropResult) -> float | None:
    return med([float(x) for x in r.writes])


def report_propagation(props: list[PropResult], reps: int) -> list[str]:
    p = {(r.op, r.n): r for r in props}
    sizes = sorted({r.n for r in props})
    out = [
        f"### Propagation: one MCPExternalAuthConfig change → N servers (median of {reps}; ratio = peer / thv)",
        "",
        "| N | thv ConfigMaps (s) | peer ConfigMaps (s) | ratio | thv + Deployments rolled (s) | peer Deployments "
        "| thv writes/change | peer writes/change | ratio | thv writes/server | peer writes/server "
        "| peer background before (writes/s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        t, q = p.get(("thv", n)), p.get(("peer", n))
        tc = med(t.cm_latency) if t else None
        qc = med(q.cm_latency) if q else None
        td = med(t.dep_latency) if t else None
        tw = _med_writes(t) if t else None
        qw = _med_writes(q) if q else None
        qbg = med(q.rep_background) if q else None
        out.append(
            f"| {n} | {num(tc)} | {num(qc)} | {ratio(qc, tc)} | {num(td)} | "
            f"{'not updated (v0.3.11)' if q else '—'} | {num(tw, 0)} | {num(qw, 0)} | {ratio(qw, tw)} | "
            f"{num(tw / n if tw is not None else None)} | {num(qw / n if qw is not None else None)} | {num(qbg, 1)} |"
        )
    if any(r.op == "floor" for r in props):
        out += [
            "",
            "### Against the floor (thv's own writes replayed by tools/floorwriter, same cluster and "
            "namespace, thv stopped; ConfigMaps + Deployments rolled; median; ratio = thv / floor)",
            "",
            "| N | thv (s) | floor (s) | thv ÷ floor | thv ConfigMaps (s) | floor ConfigMaps (s) | thv ÷ floor "
            "| thv writes | floor writes | load (1-min avg) thv / floor |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n in sizes:
            t, f = p.get(("thv", n)), p.get(("floor", n))
            if t is None or f is None:
                continue
            td, fd, tc, fc = med(t.dep_latency), med(f.dep_latency), med(t.cm_latency), med(f.cm_latency)
            out.append(
                f"| {n} | {num(td)} | {num(fd)} | {ratio(td, fd)} | {num(tc)} | {num(fc)} | {ratio(tc, fc)} "
                f"| {num(_med_writes(t), 0)} | {num(_med_writes(f), 0)} "
                f"| {num(med(t.load), 1)} / {num(med(f.load), 1)} |"
            )
    out += ["", "Writes for one change by resource (first repetition):", ""]
    out += [f"- {r.op} N={r.n}: {by_str(r.by_resource[0])}" for r in props if r.by_resource]
    out += [
        "",
        f"### With nothing changed: idle window ({IDLE_WINDOW:.0f}s; thv resyncs every {THV_RESYNC:.0f}s) "
        f"and restart (writes in the first {RESTART_WINDOW:.0f}s after ready)",
        "",
        "| N | thv idle | peer idle | thv restart | peer restart | peer writes/s before the changes "
        "| peer restart by resource |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        t, q = p.get(("thv", n)), p.get(("peer", n))
        out.append(
            f"| {n} | {t.idle_writes if t else '—'} | {q.idle_writes if q else '—'} | "
            f"{t.restart_writes if t else '—'} | {q.restart_writes if q else '—'} | "
            f"{f'{q.background_rate:.1f}' if q else '—'} | {by_str(q.restart_by) if q else '—'} |"
        )
    out += ["", "Raw propagation samples (s) and notes:", ""]
    for r in props:
        out.append(
            f"- {r.op} N={r.n}: configmaps {[round(x, 2) for x in r.cm_latency]}"
            + (f", deployments {[round(x, 2) for x in r.dep_latency]}" if r.dep_latency else "")
            + f", writes {r.writes}, background before each (writes/s) {[round(x, 1) for x in r.rep_background]}"
            + f", net {[None if x is None else round(x) for x in r.corrected]}, quiet after change {r.quiet}, settled before reps {r.settled}"
            + f" (setup {r.setup_seconds:.0f}s), idle by resource {by_str(r.idle_by)}"
            + f", load {[round(x, 1) for x in r.load]}"
            + (f"; {r.note}" if r.note else "")
        )
    return out


def _cell(r: ColdResult | None, v: float | None) -> str:
    if r is None:
        return "—"
    return num(v, 1) if v is not None else f"> {r.timeout:.0f} (timeout)"


def report_cold(colds: list[ColdResult]) -> list[str]:
    c = {(r.op, r.n): r for r in colds}
    out = [
        "### Cold start: N MCPServers exist, operator starts (ratio = peer / thv)",
        "",
        "| N | thv objects (s) | peer objects (s) | ratio | thv all Running (s) | peer all Running (s) "
        "| thv peak RSS (MiB) | peer peak RSS (MiB) | ratio | thv writes/server | peer writes/server |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted({r.n for r in colds}):
        t, q = c.get(("thv", n)), c.get(("peer", n))
        out.append(
            f"| {n} | {_cell(t, t.objects_seconds if t else None)} | {_cell(q, q.objects_seconds if q else None)} | "
            f"{ratio(q.objects_seconds if q else None, t.objects_seconds if t else None)} | "
            f"{_cell(t, t.running_seconds if t else None)} | {_cell(q, q.running_seconds if q else None)} | "
            f"{num(t.peak_rss_mib, 0) if t else '—'} | {num(q.peak_rss_mib, 0) if q else '—'} | "
            f"{ratio(q.peak_rss_mib if q else None, t.peak_rss_mib if t else None)} | "
            f"{num(t.writes / n) if t else '—'} | {num(q.writes / n) if q else '—'} |"
        )
    if any(r.op == "floor" for r in colds):
        out += [
            "",
            "### Cold start against the floor (thv's recorded writes replayed by tools/floorwriter on a "
            "fresh control plane; ratio = thv / floor)",
            "",
            "| N | thv objects (s) | floor objects (s) | thv ÷ floor | thv all Running (s) | floor all Running (s) "
            "| thv ÷ floor | thv writes | floor writes | load (1-min avg) thv / floor |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n in sorted({r.n for r in colds}):
            t, f = c.get(("thv", n)), c.get(("floor", n))
            if t is None or f is None:
                continue
            out.append(
                f"| {n} | {_cell(t, t.objects_seconds)} | {_cell(f, f.objects_seconds)} "
                f"| {ratio(t.objects_seconds, f.objects_seconds)} | {_cell(t, t.running_seconds)} "
                f"| {_cell(f, f.running_seconds)} | {ratio(t.running_seconds, f.running_seconds)} "
                f"| {t.writes} | {f.writes} | {t.load:.1f} / {f.load:.1f} |"
            )
    out += ["", "Cold-start details:", ""]
    for r in colds:
        out.append(
            f"- {r.op} N={r.n}: {r.create_seconds:.0f}s to create the servers; operator ready "
            f"{r.ready_seconds:.1f}s; {r.cms} configmaps, {r.deps} deployments, {r.running} Running; "
            f"RSS at the end {r.rss_mib:.0f} MiB; load {r.load:.1f}; writes {by_str(r.by_resource)}"
            + (f"; {r.note}" if r.note else "")
        )
    return out


def report_growth(props: list[PropResult], colds: list[ColdResult]) -> list[str]:
    out = ["### Growth with N", ""]
    for op in (*OPERATORS, "floor"):
        rows = sorted((r for r in props if r.op == op), key=lambda r: r.n)
        if not rows:
            continue
        curve = "; ".join(
            f"N={r.n}: {num(med(r.cm_latency))}s, {num(_med_writes(r), 0)} writes" for r in rows
        )
        out.append(f"- {op} propagation: {curve}")
        first, last = rows[0], rows[-1]
        la, lb = med(first.cm_latency), med(last.cm_latency)
        wb = _med_writes(last)
        if la is not None and lb is not None and wb is not None and last.n != first.n:
            out.append(
                f"  - latency slope {1000 * (lb - la) / (last.n - first.n):.1f} ms per extra server; "
                f"{wb / last.n:.2f} writes per server at N={last.n}"
            )
    for op in (*OPERATORS, "floor"):
        crows = sorted((r for r in colds if r.op == op), key=lambda r: r.n)
        if crows:
            curve = "; ".join(
                f"N={r.n}: objects {fmt_s(r.objects_seconds)}, Running {fmt_s(r.running_seconds)}, "
                f"peak {r.peak_rss_mib:.0f} MiB"
                + (f" ({r.deps}/{r.n} deployments)" if r.objects_seconds is None else "")
                for r in crows
            )
            out.append(f"- {op} cold start: {curve}")
    return out


def plot(props: list[PropResult], colds: list[ColdResult], path: Path) -> None:
    """Propagation and cold-start time against N for thv, upstream and the floor (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {
        "thv": ("thv (ConfigMaps + Deployments)", "tab:blue", "o"),
        "peer": (f"upstream {TOOLHIVE_VERSION} (ConfigMaps only)", "tab:orange", "s"),
        "floor": ("floor: thv's writes, Go client (ConfigMaps + Deployments)", "tab:green", "^"),
    }
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    for op, (label, color, marker) in style.items():
        rows = sorted((r for r in props if r.op == op and r.cm_latency), key=lambda r: r.n)
        if not rows:
            continue
        samples = [r.dep_latency or r.cm_latency for r in rows]
        ys = [statistics.median(x) for x in samples]
        lo = [y - min(x) for y, x in zip(ys, samples, strict=True)]
        hi = [max(x) - y for y, x in zip(ys, samples, strict=True)]
        ax1.errorbar(
            [r.n for r in rows], ys, yerr=[lo, hi], label=label, color=color, marker=marker, capsize=3
        )
    ax1.set_xlabel("N servers referencing the changed config")
    ax1.set_ylabel("propagation (s), median, bars: min-max")
    ax1.set_title("One MCPExternalAuthConfig change → N servers")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    cold_ns = sorted({r.n for r in colds})
    width = 0.8 / 3
    for i, op in enumerate(("thv", "peer", "floor")):
        label, color, _ = style[op]
        by_n = {r.n: r for r in colds if r.op == op}
        xs = [j + (i - 1) * width for j, n in enumerate(cold_ns) if n in by_n]
        objects = [by_n[n].objects_seconds or 0.0 for n in cold_ns if n in by_n]
        running = [by_n[n].running_seconds or 0.0 for n in cold_ns if n in by_n]
        if not xs:
            continue
        ax2.bar(
            xs,
            running,
            width,
            color=color,
            alpha=0.45,
            label=f"{op.replace('peer', 'upstream')}: all Running",
        )
        ax2.bar(xs, objects, width, color=color, label=f"{op.replace('peer', 'upstream')}: all objects")
    ax2.set_xticks(range(len(cold_ns)), [f"N = {n:,}" for n in cold_ns])
    ax2.set_ylabel("seconds from operator start")
    ax2.set_title("Cold start")
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(props: list[PropResult], colds: list[ColdResult], reps: int) -> str:
    out: list[str] = []
    if props:
        out += [*report_propagation(props, reps), ""]
    if colds:
        out += [*report_cold(colds), ""]
    out += report_growth(props, colds)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: N=1,20; cold N=200; 2 reps")
    ap.add_argument("--only", choices=OPERATORS, help="run one operator only")
    ap.add_argument("--n", help="propagation sizes, comma-separated (default 1,100,500)")
    ap.add_argument("--cold-n", help="cold-start sizes, comma-separated (default 1000,10000; '' = none)")
    ap.add_argument("--reps", type=int, help="repetitions per propagation size (default 5)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per propagation wait (s)")
    ap.add_argument(
        "--cold-timeout", type=float, help="per cold-start run (s; default 600 for N≤1000, 900 above)"
    )
    ap.add_argument(
        "--settle-cap", type=float, default=120.0, help="longest wait for an operator to go quiet (s)"
    )
    ap.add_argument(
        "--out", type=Path, help="result file (default benchmarks/results/compare.txt; none with --quick)"
    )
    ap.add_argument(
        "--no-floor", action="store_true", help="skip the floor (thv's writes replayed by tools/floorwriter)"
    )
    ap.add_argument(
        "--no-idle", action="store_true", help="skip the idle and restart windows of the propagation runs"
    )
    ap.add_argument(
        "--plot-from",
        type=Path,
        nargs="+",
        help="only draw --plot from result JSON files (written beside --out); a later file's "
        "(operator, N) replaces an earlier one's",
    )
    ap.add_argument(
        "--plot", type=Path, help="PNG of the results (default docs/img/compare.png; none with --quick)"
    )
    args = ap.parse_args(argv)
    ops = [args.only] if args.only else list(OPERATORS)
    sizes = [int(x) for x in (args.n or ("1,20" if args.quick else "1,100,500")).split(",") if x]
    cold_arg = args.cold_n if args.cold_n is not None else ("200" if args.quick else "1000,10000")
    cold_sizes = [int(x) for x in cold_arg.split(",") if x and int(x) > 0]  # 0 or "" = none
    reps = args.reps or (2 if args.quick else 5)
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "compare.txt")
    header = machine()
    for line in header:
        say(line)
    plot_path = args.plot or (None if args.quick else ROOT / "docs" / "img" / "compare.png")
    if args.plot_from:
        merged_p: dict[tuple[str, int], PropResult] = {}
        merged_c: dict[tuple[str, int], ColdResult] = {}
        for path in args.plot_from:
            data = json.loads(path.read_text())
            merged_p.update({(d["op"], d["n"]): PropResult(**d) for d in data["props"]})
            merged_c.update({(d["op"], d["n"]): ColdResult(**d) for d in data["colds"]})
        plot(
            list(merged_p.values()),
            list(merged_c.values()),
            plot_path or ROOT / "docs" / "img" / "compare.png",
        )
        return 0
    floor_bin = None
    if "thv" in ops and not args.no_floor:
        t = time.monotonic()
        floor_bin = build_floor()
        say(f"floor binary {floor_bin} ({time.monotonic() - t:.1f}s)")
    peer_bin = None
    if "peer" in ops:
        t = time.monotonic()
        peer_bin = build_peer()
        say(f"peer binary {peer_bin} ({time.monotonic() - t:.1f}s)")
    t_start = time.monotonic()
    props: list[PropResult] = []
    colds: list[ColdResult] = []
    extra: list[str] = []
    command = " ".join(["benchmarks/bench_compare.py", *(argv if argv is not None else sys.argv[1:])])

    def emit(final: bool) -> str:
        notes = [
            f"# {time.strftime('%Y-%m-%d %H:%M')} {command} "
            f"({'complete' if final else 'PARTIAL: still running'}, {time.monotonic() - t_start:.0f}s)",
            *(f"# {line}" for line in header),
            "# both operators: child processes, ConfigMap mode, each its own ServiceAccount, thv's CRDs for the "
            f"shared kinds; upstream-only CRDs installed for the peer: {', '.join(extra) or 'n/a'}",
            "",
        ]
        text = "\n".join(notes) + "\n" + report(props, colds, reps) + "\n"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            data = {"props": [asdict(r) for r in props], "colds": [asdict(r) for r in colds]}
            out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
        return text

    for op in ops:
        if not sizes:
            break
        say(f"== propagation, {op}: N = {sizes}, {reps} reps, fresh control plane")
        with cluster([op], peer_bin) as c:
            extra = extra or c.upstream_only_crds
            for n in sizes:
                props += propagation(
                    c,
                    op,
                    n,
                    reps,
                    timeout=args.timeout,
                    settle_cap=args.settle_cap,
                    floor_bin=floor_bin,
                    idle=not args.no_idle,
                )
                emit(False)
    for n in cold_sizes:
        timeout = args.cold_timeout or (600.0 if n <= 1000 else 900.0)
        recorded: list[dict[str, Any]] = []
        for op in ops:
            rec = recorded if op == "thv" and floor_bin is not None else None
            colds.append(cold_start(ops, op, n, peer_bin, timeout, record_into=rec))
            emit(False)
        if recorded and floor_bin is not None:
            colds.append(floor_cold(n, recorded, floor_bin, timeout))
            emit(False)
    print(emit(True))
    if plot_path is not None:
        plot(props, colds, plot_path)
        say(f"wrote {plot_path}")
    if out is not None:
        say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
