"""A real node leaves nothing behind (issue 12, item 3): after ``scripts/dev down``, and after a
killed ``scripts/dev up`` daemon followed by ``down`` — no processes, mounts, cgroups, bridge,
veths, iptables rules, network namespaces or changed sysctls.

Runs the daemon as ``python -m devcluster`` in subprocesses, as a user would; a pod is running
on the node each time, so that there is real state (veth, netns, overlay and tmpfs mounts,
cgroups) to clean up. Runs before every other real-node test (one real node per machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devcluster import hostnet
from devcluster.controlplane import pid_alive
from devcluster.images import build_image
from devcluster.node import check_host
from devcluster.podkit import create, get, python_pod_spec, ready, wait_for

pytestmark = pytest.mark.integration


def _dev(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devcluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class _Cluster:
    """Just enough of a ControlPlane for nodekit, from the daemon's state.json."""

    def __init__(self, state: dict[str, object]) -> None:
        import yaml

        kubeconfig = yaml.safe_load(Path(str(state["kubeconfig"])).read_text())
        self.server = str(state["server"])
        self.token = kubeconfig["users"][0]["user"]["token"]
        self.dir = Path(str(state["dir"]))

    def api_request(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        import ssl
        import urllib.error
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.dir / "pki" / "ca.crt"))
        req = urllib.request.Request(
            f"{self.server}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return int(r.status), json.load(r)
        except urllib.error.HTTPError as e:
            return int(e.code), json.loads(e.read() or b"{}")


def _up_with_a_pod(state_dir: Path) -> tuple[dict[str, object], hostnet.HostRecord]:
    up = _dev("up", "--node", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr[-3000:]
    state = json.loads((state_dir / "state.json").read_text())
    record = hostnet.load()
    assert record is not None, "the node recorded nothing before changing the host"
    cp = _Cluster(state)
    image = build_image("demo-mcp", quiet=True)
    subprocess.run(
        [
            "ctr",
            "--address",
            record.containerd_address,
            "-n",
            "k8s.io",
            "images",
            "import",
            str(image.archive),
        ],
        check=True,
        capture_output=True,
    )
    create(
        cp,  # type: ignore[arg-type]
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "sleeper"},
            "spec": python_pod_spec(image.ref, "import time\ntime.sleep(3600)"),
        },
    )
    wait_for(
        "the pod runs",
        lambda: (p := get(cp, "/api/v1/namespaces/default/pods/sleeper")) is not None and ready(p),  # type: ignore[arg-type]
        timeout=120,
    )
    assert hostnet.leftovers(record), "a running pod should leave traces to clean up"
    return state, record


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    check_host()
    if hostnet.HostLock.held_here:
        pytest.fail("this test session already runs a real node (real_cluster): run these tests first")
    lock = hostnet.HostLock()
    wait_for("no other real node on this machine", lock.try_acquire, timeout=1800, interval=2.0)
    lock.release()
    return tmp_path / "dev"


def test_dev_down_leaves_nothing_behind(state_dir: Path) -> None:
    t0 = time.monotonic()
    _, record = _up_with_a_pod(state_dir)
    up_s = time.monotonic() - t0
    t1 = time.monotonic()
    down = _dev("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert hostnet.leftovers(record) == []
    assert hostnet.load() is None
    assert not list(state_dir.glob("thv-cp-*"))
    print(f"up with a pod {up_s:.1f}s, down {time.monotonic() - t1:.1f}s")


def test_a_killed_dev_up_leaves_nothing_behind_after_down(state_dir: Path) -> None:
    state, record = _up_with_a_pod(state_dir)
    pid = int(str(state["pid"]))
    os.kill(pid, signal.SIGKILL)  # its children die with it (PR_SET_PDEATHSIG); pods and shims do not
    wait_for("the daemon is gone", lambda: not pid_alive(pid), timeout=30)
    assert hostnet.leftovers(record), "the kill should have left pods behind"
    down = _dev("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert hostnet.leftovers(record) == []
    assert not list(state_dir.glob("thv-cp-*"))


def test_a_kubelet_that_exits_is_one_clear_line_and_nothing_is_left(
    state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devcluster import ControlPlane
    from devcluster.controlplane import ControlPlaneError

    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("kubelet", "kube-proxy"):
        (fake / name).write_text("#!/bin/sh\necho 'E1130 failing on purpose' >&2\nexit 3\n")
        (fake / name).chmod(0o755)
    monkeypatch.setenv("THV_NODE_BIN", str(fake))
    run_containerd_existed = hostnet.SHIM_SOCKETS.parent.exists()  # e.g. left by another containerd
    cp = ControlPlane(node="real", base_dir=state_dir, quiet=True)
    with pytest.raises(ControlPlaneError) as err:
        cp.start()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("kubelet exited with status 3")
    log = Path(message.rsplit("read ", 1)[1])
    assert log.name == "kubelet.log" and "failing on purpose" in log.read_text()
    assert "failing on purpose" in err.value.log_tail
    assert hostnet.load() is None
    record = hostnet.HostRecord(
        owner_dir=str(log.parent.parent),
        containerd_address=str(hostnet.RUN_DIR / "containerd.sock"),
        bridge="thv0",
        sysctls={},
        netns_before=[],
        run_containerd_existed=run_containerd_existed,
    )
    assert hostnet.leftovers(record) == []
