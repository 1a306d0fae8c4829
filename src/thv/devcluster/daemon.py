"""``thv dev up`` / ``thv dev down``: the local control plane as a background daemon.

``up`` starts ``python -m thv.devcluster.daemon`` in its own session; the daemon starts a
:class:`ControlPlane`, writes ``state.json`` (pid, kubeconfig, data dir) and waits for
SIGTERM. The control-plane processes die with the daemon (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from thv.devcluster.controlplane import ControlPlane


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The running daemon's state, or ``None`` if none is running."""
    path = _state_file(state_dir)
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError):
        path.unlink(missing_ok=True)
        return None
    return state


def dev_up(state_dir: Path, timeout: float = 900.0) -> dict[str, Any]:
    """Start the daemon (or reuse a running one); returns its state once the cluster is ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(state_dir)
    if state is not None:
        return state
    log = (state_dir / "daemon.log").open("ab")
    subprocess.Popen(
        [sys.executable, "-m", "thv.devcluster.daemon", str(state_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None:
            return state
        time.sleep(0.3)
    raise TimeoutError(f"local control plane did not start; see {state_dir / 'daemon.log'}")


def dev_down(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the daemon and its cluster. Returns False when none was running."""
    state = read_state(state_dir)
    if state is None:
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    _state_file(state_dir).unlink(missing_ok=True)
    return True


def _main(state_dir: Path) -> None:
    cp = ControlPlane(base_dir=state_dir)
    stop = False

    def _term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    cp.start()
    try:
        state = {
            "pid": os.getpid(),
            "kubeconfig": str(cp.kubeconfig),
            "dir": str(cp.dir),
            "server": cp.server,
            "audit_log": str(cp.audit_log_path),
        }
        tmp = _state_file(state_dir).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(_state_file(state_dir))
        while not stop:
            time.sleep(0.5)
    finally:
        _state_file(state_dir).unlink(missing_ok=True)
        cp.stop()


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
