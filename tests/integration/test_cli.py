"""The ``thv`` command line as a user runs it: separate processes against the real control plane.

- ``thv crds --apply`` installs the CRDs (idempotently) and waits until they are established;
- ``thv operator run`` reconciles the examples, serves /readyz, and stops cleanly on SIGTERM;
- ``thv render --diff`` says ``same`` for what the operator wrote, shows a unified diff and exits 1
  once a live object drifts, and ``missing`` for objects that do not exist;
- bad input ends in one clear line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devcluster import ControlPlane
from devcluster.demo import apply_examples, status_table
from thvtest.harness import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def thv(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thv", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_crds_apply_is_idempotent(control_plane: ControlPlane) -> None:
    for _ in range(2):
        r = thv("crds", "--apply", "--kubeconfig", str(control_plane.kubeconfig))
        assert r.returncode == 0, r.stderr
        assert "CRDs applied and established" in r.stderr
    for plural in ("mcpservers", "mcptoolconfigs", "mcpexternalauthconfigs"):
        status, body = control_plane.api_request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.toolhive.stacklok.dev"
        )
        assert status == 200
        conds = {c["type"]: c["status"] for c in body["status"]["conditions"]}
        assert conds["Established"] == "True"


def test_operator_run_render_diff_and_shutdown(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path, tmp_path: Path
) -> None:
    port = _free_port()
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thv",
            "operator",
            "run",
            "--kubeconfig",
            str(operator_kubeconfig_path),
            "--namespace",
            namespace,
            "--use-configmap",
            "--metrics-bind-address",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200, 60, "/readyz 200 (caches synced)")
        apply_examples(control_plane, namespace)
        wait_for(lambda: status_table(control_plane, namespace)[1], 120, "all examples reconciled")

        files = [a for f in sorted(EXAMPLES.glob("*.yaml")) for a in ("-f", str(f))]
        common = [
            "render",
            *files,
            "--use-configmap",
            "-n",
            namespace,
            "--kubeconfig",
            str(control_plane.kubeconfig),
        ]
        r = thv(*common, "--diff")
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines and all(line.startswith("same ") for line in lines), r.stdout
        assert {line.split()[1] for line in lines} >= {"Deployment", "Service", "ConfigMap"}

        # drift: someone edits a RunConfig ConfigMap by hand (the operator would put it back, so
        # stop it first to look at the drifted state)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "operator.log").read_text()[-2000:]
        status, cms = control_plane.api_request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
        runconfigs = [c for c in cms["items"] if "runconfig.json" in (c.get("data") or {})]
        assert status == 200 and runconfigs, cms
        cm = runconfigs[0]
        cm["data"]["runconfig.json"] = '{"drifted": true}'
        status, body = control_plane.api_request(
            "PUT", f"/api/v1/namespaces/{namespace}/configmaps/{cm['metadata']['name']}", cm
        )
        assert status == 200, body
        r = thv(*common, "--diff")
        assert r.returncode == 1
        assert f"differs  ConfigMap {namespace}/{cm['metadata']['name']}" in r.stdout
        assert "--- live ConfigMap" in r.stdout and "+++ rendered" in r.stdout
        assert "-  runconfig.json: '{\"drifted\": true}'" in r.stdout

        r = thv(
            "render",
            *files,
            "--use-configmap",
            "-n",
            "nowhere",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--diff",
        )
        assert r.returncode == 1
        assert all(line.startswith("missing ") for line in r.stdout.splitlines()), r.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "operator.log").read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "change-me" not in text  # the example Secret's value is never logged


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_errors_are_one_clear_line(control_plane: ControlPlane, tmp_path: Path) -> None:
    cases = [
        (["render", "-f", str(tmp_path / "nope.yaml")], "No such file"),
        (["crds", "--apply", "--kubeconfig", str(tmp_path / "missing.kubeconfig")], "missing.kubeconfig"),
        (["operator", "run", "--kubeconfig", str(tmp_path / "missing.kubeconfig")], "missing.kubeconfig"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: MCPServer\nmetadata: {name: x}\nspec: {image: 7, transport: pigeon}\n")
    cases.append((["render", "-f", str(bad)], "MCPServer default/x"))
    for args, expect in cases:
        t0 = time.monotonic()
        r = thv(*args, timeout=60)
        assert r.returncode != 0, (args, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert "Traceback" not in err, err
        assert expect in err, (args, err)
        assert len(err.splitlines()) == 1, err
        assert time.monotonic() - t0 < 30
    r = thv("operator")
    assert r.returncode == 2  # usage error


def test_sigterm_releases_the_leader_lease(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path, tmp_path: Path
) -> None:
    """Two ``thv operator run --leader-elect`` processes: SIGTERM to the leader exits 0 and
    releases the Lease, so the standby leads within a retry period instead of a lease duration."""
    from thvtest.harness import OPERATOR_NS

    lease = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NS}/leases/toolhive-operator-leader-election"
    control_plane.api_request("DELETE", lease)

    def start(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable, "-m", "thv", "operator", "run",
                "--kubeconfig", str(operator_kubeconfig_path), "--namespace", namespace,
                "--leader-elect", "--leader-election-namespace", OPERATOR_NS,
                "--metrics-bind-address", f"127.0.0.1:{_free_port()}",
            ],
            stdout=(tmp_path / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def holder() -> str:
        for name, p in procs.items():
            if p.poll() is not None and p.returncode != 0:
                raise AssertionError(
                    f"{name} exited {p.returncode}: {(tmp_path / f'{name}.log').read_text()[-2000:]}"
                )
        status, body = control_plane.api_request("GET", lease)
        return str(body["spec"].get("holderIdentity") or "") if status == 200 else ""

    procs = {"a": start("a")}
    try:
        first = wait_for(holder, 60, "a leader")
        procs["b"] = start("b")
        time.sleep(3)
        assert holder() == first, "the standby must not take a held lease"
        leader = next(n for n, p in procs.items() if str(p.pid) in first or n == "a")
        procs[leader].send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert procs[leader].wait(30) == 0
        new = wait_for(lambda: (h := holder()) and h != first and h, 30, "standby leads")
        took = time.monotonic() - t0
        assert took < 10, f"handover took {took:.1f}s; a released lease is taken at the next retry"
        assert new != first
        log = (tmp_path / f"{leader}.log").read_text()
        assert "released the leader lease" in log, log[-2000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
