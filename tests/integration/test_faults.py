"""Fault injection against the real control plane, each during a 200-write churn.

Every trial converges to exactly what a fresh ``thv render`` of the cluster's current objects
says (see :func:`faults.problems`): no missing, drifted, orphaned or duplicated objects, current
hashes, every server Running, and the client secret nowhere in the operator's logs.

- apiserver restart after an etcd compaction (watches and lists get 410 Gone), twice per churn;
- SIGKILL of the operator at random points, restarted at once or after a pause;
- concurrent writers: a second client updating the same MCPServers and configs (the operator's
  guarded writes get 409 Conflict and retry from fresh state) and tampering with owned objects;
- start while half reconciled: the operator is killed mid-way through its first sync, objects
  it wrote are deleted or corrupted, and the churn goes on while it is down.

``THV_FAULT_TRIALS`` trials per fault (default 2 in the test command; ``make soak`` runs 20).
Each trial's seed is in its id, so a failure reproduces with ``-k <id>``. Modes alternate
between ConfigMap and CLI-flag mode.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import OWNED, SECRET_VALUE, Churn, G, OperatorProcess, request, wait_converged

from devcluster import ControlPlane
from thvtest.harness import OPERATOR_USER

TRIALS = int(os.environ.get("THV_FAULT_TRIALS", "2"))
SEEDS = [1000 + i for i in range(TRIALS)]


def _mode(seed: int) -> bool:
    return seed % 2 == 0  # even seeds: ConfigMap mode


@pytest.fixture
def trial_ns(control_plane: ControlPlane) -> Iterator[str]:
    name = f"fault-{uuid.uuid4().hex[:8]}"
    assert request(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    deadline = time.monotonic() + 30
    while request(control_plane, "GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield name
    request(control_plane, "DELETE", f"/api/v1/namespaces/{name}")


def _finish(cp: ControlPlane, ns: str, op: OperatorProcess, churn: Churn, what: str) -> None:
    # generous: after an apiserver restart kube-controller-manager itself can take over a minute
    # to create ReplicaSets again (seen: 77 s), and "Running" needs its Deployment status
    took = wait_converged(cp, ns, op.use_configmap, timeout=300, alive=op.assert_alive)
    logs = op.logs()
    assert SECRET_VALUE not in logs, "the client secret appeared in the operator's log"
    for cm in request(cp, "GET", f"/api/v1/namespaces/{ns}/configmaps")[1]["items"]:
        assert SECRET_VALUE not in str(cm.get("data")), cm["metadata"]["name"]
    print(
        f"[faults] {what}: seed {churn.seed} mode {'configmap' if op.use_configmap else 'flags'}: "
        f"{churn.done} writes, converged {took:.1f}s after the churn, operator starts {op.starts}"
    )


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_apiserver_restart_and_compaction_during_churn(
    control_plane: ControlPlane, trial_ns: str, operator_kubeconfig_path: Path, tmp_path: Path, seed: int
) -> None:
    cp, rng = control_plane, random.Random(seed)
    op = OperatorProcess(operator_kubeconfig_path, trial_ns, _mode(seed), tmp_path)
    churn = Churn(cp, trial_ns, seed)
    churn.setup()
    op.start()
    try:
        churn.start()
        for at in sorted(rng.sample(range(20, 180), 2)):
            churn.wait_until(at)
            cp.expire_resource_versions(kill=rng.random() < 0.5)  # compaction + restart: 410s
        churn.join()
        _finish(cp, trial_ns, op, churn, "apiserver restart + 410")
    finally:
        op.stop()


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_operator_sigkill_during_churn(
    control_plane: ControlPlane, trial_ns: str, operator_kubeconfig_path: Path, tmp_path: Path, seed: int
) -> None:
    cp, rng = control_plane, random.Random(seed)
    op = OperatorProcess(operator_kubeconfig_path, trial_ns, _mode(seed), tmp_path)
    churn = Churn(cp, trial_ns, seed)
    churn.setup()
    op.start()
    try:
        churn.start()
        for at in sorted(rng.sample(range(10, 190), 3)):
            churn.wait_until(at)
            op.kill()
            time.sleep(rng.choice([0.0, 0.5, 1.5]))
            op.start(wait_ready=False)
        churn.join()
        op.wait_ready()
        _finish(cp, trial_ns, op, churn, "SIGKILL")
    finally:
        op.stop()


class _Meddler:
    """A second client: read-modify-write (with resourceVersion) on the same MCPServers and
    configs the operator writes finalizers and annotations to, and drift on owned objects."""

    def __init__(self, cp: ControlPlane, ns: str, seed: int) -> None:
        self.cp, self.ns, self.rng = cp, ns, random.Random(seed * 7)
        self.stop = threading.Event()
        self.fresh: queue.Queue[str] = queue.Queue()
        self.updates = self.conflicts = self.tampered = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="meddler")

    def _pick(self, path: str) -> dict[str, Any] | None:
        status, body = request(self.cp, "GET", path)
        items = (
            [i for i in body.get("items", []) if not i["metadata"].get("deletionTimestamp")]
            if status == 200
            else []
        )
        return self.rng.choice(items) if items else None

    def created(self, name: str) -> None:
        self.fresh.put(name)

    def _burst(self, name: str) -> None:
        """Back-to-back updates of a server just created, while the operator adds its finalizer
        (a GET then a resourceVersion-guarded patch): the guard fails and it must re-read."""
        path = f"{G}/{self.ns}/mcpservers/{name}"
        for i in range(10):
            status, obj = request(self.cp, "GET", path)
            if status != 200:
                return
            obj["metadata"].setdefault("labels", {})["burst"] = str(i)
            status, _ = request(self.cp, "PUT", path, obj)
            self.updates += status == 200
            self.conflicts += status == 409

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            if n % 3 == 0:
                self._tamper()
            try:
                self._burst(self.fresh.get(timeout=0.005))
                continue
            except queue.Empty:
                pass
            kind = self.rng.choice(["mcpservers", "mcpservers", "mcpexternalauthconfigs", "mcptoolconfigs"])
            obj = self._pick(f"{G}/{self.ns}/{kind}")
            if obj is not None:
                obj["metadata"].setdefault("labels", {})["meddler"] = str(n)
                status, _ = request(self.cp, "PUT", f"{G}/{self.ns}/{kind}/{obj['metadata']['name']}", obj)
                self.updates += status == 200
                self.conflicts += status == 409
            time.sleep(0.01)

    def _tamper(self) -> None:
        dep = self._pick(OWNED["Deployment"].format(ns=self.ns))
        if dep is not None:
            dep["spec"]["template"]["spec"]["containers"][0]["image"] = "tampered:latest"
            path = f"{OWNED['Deployment'].format(ns=self.ns)}/{dep['metadata']['name']}"
            self.tampered += request(self.cp, "PUT", path, dep)[0] == 200
        cm = self._pick(OWNED["ConfigMap"].format(ns=self.ns))
        if cm is not None and "runconfig.json" in (cm.get("data") or {}):
            cm["data"]["runconfig.json"] = '{"tampered": true}'
            path = f"{OWNED['ConfigMap'].format(ns=self.ns)}/{cm['metadata']['name']}"
            self.tampered += request(self.cp, "PUT", path, cm)[0] == 200

    def __enter__(self) -> _Meddler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_concurrent_writers_cause_conflicts_and_drift(
    control_plane: ControlPlane, trial_ns: str, operator_kubeconfig_path: Path, tmp_path: Path, seed: int
) -> None:
    cp = control_plane
    op = OperatorProcess(operator_kubeconfig_path, trial_ns, _mode(seed), tmp_path)
    churn = Churn(cp, trial_ns, seed)
    churn.setup()
    op.start()
    mark = cp.audit.mark()
    try:
        with _Meddler(cp, trial_ns, seed) as meddler:
            churn.on_create = meddler.created
            churn.start()
            churn.join()
            deadline = time.monotonic() + 30
            while meddler.tampered < 6 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert meddler.updates > 20 and meddler.tampered > 5, vars(meddler)
        _finish(cp, trial_ns, op, churn, "concurrent writers")
        # a failed resourceVersion test in a JSON patch is 422, a stale update 409
        failed = cp.audit.writes(mark, user=OPERATOR_USER, namespace=trial_ns, successful=False)
        conflicts = [e for e in failed if e.response_status.code in (409, 422)]
        assert conflicts, "the meddler never made an operator write conflict"
        print(
            f"[faults]   meddler: {meddler.updates} updates ({meddler.conflicts} of its own 409s), "
            f"{meddler.tampered} tampered objects; operator got {len(conflicts)} 409s and retried"
        )
    finally:
        op.stop()


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_start_while_half_reconciled(
    control_plane: ControlPlane, trial_ns: str, operator_kubeconfig_path: Path, tmp_path: Path, seed: int
) -> None:
    cp, rng, ns = control_plane, random.Random(seed), trial_ns
    op = OperatorProcess(operator_kubeconfig_path, ns, _mode(seed), tmp_path)
    churn = Churn(cp, ns, seed, ops=200)
    churn.setup()
    churn.start()
    churn.wait_until(100)  # half the churn happens before any operator runs
    op.start(wait_ready=False)
    time.sleep(rng.uniform(1.5, 4.0))  # killed during its first sync
    op.kill()
    # someone cleans up by hand, badly: owned objects deleted or corrupted while it is down
    for kind in ("Deployment", "ConfigMap", "Service"):
        _, body = request(cp, "GET", OWNED[kind].format(ns=ns))
        for obj in body.get("items", []):
            if not any(r.get("kind") == "MCPServer" for r in obj["metadata"].get("ownerReferences") or []):
                continue
            path = f"{OWNED[kind].format(ns=ns)}/{obj['metadata']['name']}"
            if rng.random() < 0.3:
                request(cp, "DELETE", path)
            elif rng.random() < 0.3 and kind == "ConfigMap" and "runconfig.json" in (obj.get("data") or {}):
                obj["data"]["runconfig.json"] = "{}"
                request(cp, "PUT", path, obj)
    churn.join()
    try:
        op.start()
        _finish(cp, ns, op, churn, "half-reconciled start")
    finally:
        op.stop()
