"""``scripts/dev up`` / ``scripts/dev down``: the local control plane as a background daemon.

``dev_up`` builds (or finds cached) binaries in the foreground, so the build's progress is
visible, then starts ``python -m devcluster.daemon <state_dir>`` in its own session with
output to ``<state_dir>/daemon.log``. The daemon starts a :class:`ControlPlane` under
``state_dir``, writes ``<state_dir>/state.json`` once the cluster is ready, and stops it on
SIGTERM/SIGINT. The control-plane processes die with the daemon (PR_SET_PDEATHSIG); a data
directory left by a killed daemon is removed by the next ``dev_up``.

With ``jaeger=True`` (``scripts/dev up --jaeger``) ``dev_up`` also builds Jaeger in the foreground
and the daemon runs a :class:`~devcluster.jaeger.Jaeger` (in-memory storage, free loopback
ports, started from the daemon's main thread so it dies with it too) and records its addresses
under ``"jaeger"`` in state.json; ``dev_down`` stops it with the cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NotRequired, TypedDict

from devcluster.controlplane import (
    ControlPlane,
    ControlPlaneError,
    build_binaries,
    pid_alive,
    reap_stale_dirs,
    wait_for_exit,
)
from devcluster.images import build_all
from devcluster.jaeger import Jaeger, JaegerError, JaegerInfo, build_jaeger
from devcluster.jaeger import reap_stale_dirs as reap_stale_jaeger_dirs
from devcluster.node import NODE_IP, build_node_binaries, check_host, reap_stale_node

_DAEMON_MODULE = "devcluster.daemon"


class DevState(TypedDict):
    """Contents of ``<state_dir>/state.json``."""

    pid: int
    """The daemon's pid (the control-plane processes are its children)."""
    pids: dict[str, int]
    server: str
    kubeconfig: str
    dir: str
    audit_log: str
    logs: str
    started_at: float
    startup_seconds: float
    jaeger: NotRequired[JaegerInfo]
    """Present when the daemon runs Jaeger (``scripts/dev up --jaeger``)."""


def state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _is_daemon(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid
    return _DAEMON_MODULE.encode() in cmdline and pid_alive(pid)


def read_state(state_dir: Path) -> DevState | None:
    """The running daemon's state, or ``None`` if none is running (a stale file is removed)."""
    path = state_file(state_dir)
    try:
        state: DevState = json.loads(path.read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _is_daemon(pid):
        path.unlink(missing_ok=True)
        return None
    return state


def dev_up(state_dir: Path, *, jaeger: bool = False, node: bool = False, timeout: float = 120.0) -> DevState:
    """Start the local control plane (and Jaeger with ``jaeger=True``) in a background daemon,
    or return the running one's state.

    Progress goes to stderr. Returns once the cluster (and Jaeger) is ready; raises
    :class:`ControlPlaneError` (with the daemon log's tail) if the daemon fails or ``timeout``
    seconds pass after the binaries are ready, or if ``jaeger`` is asked of a running daemon
    started without it. ``node=True`` adds a real node (:mod:`devcluster.node`): its binaries and
    images are built here, in the foreground, so that their progress is visible."""
    state_dir = state_dir.expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    state = read_state(state_dir)
    if state is not None:
        if jaeger and "jaeger" not in state:
            raise ControlPlaneError(
                f"the dev cluster (pid {state['pid']}) is running without Jaeger; "
                "stop it with `scripts/dev down` first, then `scripts/dev up --jaeger`"
            )
        print(f"[devcluster] already running (pid {state['pid']})", file=sys.stderr)
        return state
    reap_stale_node()
    reap_stale_dirs(state_dir)
    reap_stale_jaeger_dirs(state_dir)
    env = {**os.environ, "THV_CONTROLPLANE_BIN": str(build_binaries())}
    args = [sys.executable, "-m", _DAEMON_MODULE, str(state_dir)]
    if node:
        check_host()
        env["THV_NODE_BIN"] = str(build_node_binaries())
        build_all(["pause", "coredns"])
        args.append("--node")
        timeout += 180.0
    if jaeger:
        try:
            env["THV_JAEGER_BIN"] = str(build_jaeger())
        except JaegerError as e:
            raise ControlPlaneError(str(e)) from e
        args.append("--jaeger")
    log_path = state_dir / "daemon.log"
    with log_path.open("ab") as log:
        daemon = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    print(f"[devcluster] daemon pid {daemon.pid} starting; log {log_path}", file=sys.stderr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None and state["pid"] == daemon.pid:
            print(f"[devcluster] ready in {state['startup_seconds']:.1f}s", file=sys.stderr)
            return state
        rc = daemon.poll()
        if rc is not None:
            raise ControlPlaneError(
                f"{_last_error(log_path) or f'the dev cluster daemon exited with status {rc}'} (daemon log {log_path})",
                _tail(log_path),
            )
        time.sleep(0.2)
    daemon.terminate()
    raise ControlPlaneError(
        f"the dev cluster was not ready after {timeout:.0f}s; read {log_path}", _tail(log_path)
    )


def dev_down(state_dir: Path, *, timeout: float = 60.0) -> bool:
    """Stop the daemon and its cluster (SIGTERM, SIGKILL after ``timeout``), remove its data.
    Returns ``False`` when none was running."""
    state_dir = state_dir.expanduser().resolve()
    state = read_state(state_dir)
    if state is None:
        reap_stale_node()
        reap_stale_dirs(state_dir)
        reap_stale_jaeger_dirs(state_dir)
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(pid, timeout):
        os.kill(pid, signal.SIGKILL)  # its children get SIGKILL too (PR_SET_PDEATHSIG)
        wait_for_exit(pid, 10.0)
    state_file(state_dir).unlink(missing_ok=True)
    time.sleep(0.2)  # let the kernel release the dead owner's lock
    reap_stale_node()
    reap_stale_dirs(state_dir)
    reap_stale_jaeger_dirs(state_dir)
    return True


def _last_error(log_path: Path) -> str | None:
    """The daemon's one-line failure (``SomeError: message``), from the end of its log."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        head, sep, rest = line.partition(": ")
        if sep and head.rsplit(".", 1)[-1].endswith("Error") and " " not in head:
            return rest
    return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _main(state_dir: Path, *, with_jaeger: bool = False, with_node: bool = False) -> None:
    stop = threading.Event()

    def _term(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    cp = ControlPlane(base_dir=state_dir, node="real" if with_node else "kwok")
    # started here, on the main thread, so that PR_SET_PDEATHSIG ties it to the daemon; with the
    # real node its OTLP receivers listen on the node's bridge address (NODE_IP), which the
    # host reaches too and pods reach through their default route, so it starts after the node
    jaeger = (
        Jaeger(base_dir=state_dir, otlp_host=NODE_IP if with_node else "127.0.0.1") if with_jaeger else None
    )
    started = False
    try:
        if jaeger is not None and not with_node:
            jaeger.start()
        cp.start()
        started = True
        if jaeger is not None and with_node:
            jaeger.start()
        state: DevState = {
            "pid": os.getpid(),
            "pids": cp.pids(),
            "server": cp.server,
            "kubeconfig": str(cp.kubeconfig),
            "dir": str(cp.dir),
            "audit_log": str(cp.audit_log_path),
            "logs": str(cp.dir / "logs"),
            "started_at": time.time(),
            "startup_seconds": cp.startup_seconds,
        }
        if jaeger is not None:
            state["jaeger"] = jaeger.info()
        tmp = state_file(state_dir).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(state_file(state_dir))
        while not stop.wait(1.0):
            try:
                cp.check()
                if jaeger is not None:
                    jaeger.check()
            except (ControlPlaneError, JaegerError) as e:
                print(f"[devcluster] {e}\n[devcluster] stopping", file=sys.stderr, flush=True)
                break
    finally:
        state_file(state_dir).unlink(missing_ok=True)
        try:
            if started:  # a failed start already stopped everything and keeps the logs it names
                cp.stop()
        finally:
            if jaeger is not None:
                jaeger.stop()


if __name__ == "__main__":
    _main(Path(sys.argv[1]), with_jaeger="--jaeger" in sys.argv[2:], with_node="--node" in sys.argv[2:])
