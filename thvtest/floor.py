"""The floor writer: thv's own API writes, replayed by the lowest-overhead client built here.

``tools/floorwriter`` (Go, client-go's transport, every request multiplexed over one HTTP/2
connection, no client-side rate limit, up to 256 requests in flight) sends a recorded list of
writes and nothing else: no informers, no reads, no rendering, no diffing. ``bench_compare``
records the list from the apiserver audit log of thv's own run of the same scenario (the audit
policy of :data:`AUDIT_POLICY` logs the operators' write bodies), so the floor performs exactly
thv's writes: the same objects, verbs, bodies, field manager and subresources, the same count,
under thv's ServiceAccount and RBAC. Only the finalizer JSON patch loses its
``resourceVersion`` test (thv reads the object first to fill it; the floor reads nothing), and
ownerReference UIDs are mapped to the objects of the cluster the floor runs in.

The floor's time is a lower bound for any operator doing these writes on this machine, with
the same controller-manager and kwok work following them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from devcluster.gobuild import run_build_script
from devcluster.paths import tool_script
from thvtest.harness import OPERATOR_USER
from thvtest.peer import PEER_USER

AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: Request
  users: ["{OPERATOR_USER}", "{PEER_USER}"]
- level: Metadata
"""
"""The control plane's default policy, plus the operators' write bodies (``requestObject``),
for both operators alike, so that thv's writes can be replayed by the floor."""

_METHODS = {"create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}


def build_floor(*, quiet: bool = False) -> Path:
    """Build (or take from the cache) the floor writer; returns the binary's path."""
    script = tool_script("floorwriter")
    path = run_build_script(script, RuntimeError, quiet=quiet)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{script} printed {path}, which is not an executable")
    return path


def _events(path: Path, start: int, end: int | None) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        f.seek(start)
        while end is None or f.tell() < end:
            line = f.readline()
            if not line.endswith(b"\n"):
                return
            yield json.loads(line)


def record(audit_log: Path, start: int, end: int | None, user: str, namespace: str) -> list[dict[str, Any]]:
    """The successful writes of ``user`` in ``namespace`` between two audit-log marks, as floor
    ops (``verb``, ``uri``, ``ctype``, ``body``, ``key``: the object's path), in log order."""
    ops: list[dict[str, Any]] = []
    for ev in _events(audit_log, start, end):
        ref = ev.get("objectRef") or {}
        code = (ev.get("responseStatus") or {}).get("code", 0)
        if (
            ev.get("stage") != "ResponseComplete"
            or ev.get("verb") not in _METHODS
            or (ev.get("user") or {}).get("username") != user
            or ref.get("namespace") != namespace
            or not 200 <= code < 300
        ):
            continue
        uri: str = ev["requestURI"]
        body = ev.get("requestObject")
        if ev["verb"] == "patch":
            if isinstance(body, list):
                ctype = "application/json-patch+json"
                body = [p for p in body if p.get("op") != "test"]
            elif "force=" in uri:
                ctype = "application/apply-patch+yaml"
            else:
                ctype = "application/merge-patch+json"
        else:
            ctype = "application/json"
            if ev["verb"] == "update" and isinstance(body, dict):
                body.get("metadata", {}).pop("resourceVersion", None)
        ops.append(
            {
                "verb": _METHODS[ev["verb"]],
                "uri": uri,
                "ctype": ctype,
                "body": body,
                # writes to one object go out in order, and a RoleBinding only after its Role
                # (the apiserver checks that the binder holds the Role's rules: 404 until the
                # Role exists; thv writes the Role first)
                "key": urlsplit(uri).path.rstrip("/").replace("/rolebindings/", "/roles/"),
            }
        )
    return ops


def for_cluster(
    ops: list[dict[str, Any]], uids: Mapping[tuple[str, str], str], *, gate_running: bool
) -> list[dict[str, Any]]:
    """``ops`` for another cluster: ownerReference UIDs replaced by those of the objects of the
    same kind and name in ``uids``; with ``gate_running``, a status write that sets
    ``phase: Running`` on an MCPServer waits until that server's Deployment is available
    (as thv writes it only then)."""
    out = []
    for o in ops:
        o = dict(o)
        body = o["body"]
        if isinstance(body, dict):
            for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
                uid = uids.get((ref.get("kind", ""), ref.get("name", "")))
                if uid:
                    ref["uid"] = uid
            phase = (body.get("status") or {}).get("phase")
            path = urlsplit(o["uri"]).path
            if gate_running and phase == "Running" and "/mcpservers/" in path and path.endswith("/status"):
                o["gate"] = path.split("/")[-2]  # the Deployment is named after the server
        out.append(o)
    return out


def write_ops(ops: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w") as f:
        for o in ops:
            f.write(json.dumps(o, separators=(",", ":")) + "\n")
    return path


class FloorProcess:
    """One floorwriter run: started, connected and loaded (``ready``), then ``go()``; its
    summary (``result()``) once it has sent everything."""

    def __init__(
        self,
        binary: Path,
        kubeconfig: Path,
        ops_file: Path,
        *,
        gate_namespace: str = "",
        concurrency: int = 256,
        log_path: Path | None = None,
    ) -> None:
        argv = [
            str(binary),
            "-kubeconfig",
            str(kubeconfig),
            "-ops",
            str(ops_file),
            "-concurrency",
            str(concurrency),
        ]
        if gate_namespace:
            argv += ["-gate-namespace", gate_namespace]
        self._log: IO[bytes] | None = log_path.open("wb") if log_path else None
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL,
            text=True,
        )
        self.peak_rss_mib = 0.0
        self._summary: dict[str, Any] | None = None

    def wait_ready(self) -> float:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"floorwriter did not start: {line!r} (exit {self.proc.poll()})")
        return time.monotonic() - self.started_at

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def check(self) -> None:
        """Raise if the writer failed (it exits by itself, with 0, once everything is sent).
        Looks without reaping (``WNOWAIT``), so that :meth:`result` can read its rusage."""
        info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_status != 0:
            raise RuntimeError(f"floorwriter exited with {info.si_status}")

    def result(self, timeout: float = 600.0) -> dict[str, Any]:
        """The writer's summary (sent, ok, failed, by_status, seconds, errors); reaps it and
        records its peak RSS."""
        if self._summary is None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            self._summary = json.loads(line) if line.strip() else {"errors": ["no summary"]}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.peak_rss_mib = usage.ru_maxrss / 1024
                    break
                time.sleep(0.05)
        return self._summary

    def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> FloorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
