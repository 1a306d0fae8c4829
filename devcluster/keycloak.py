"""A real Keycloak (26, dev mode, in-memory H2) with the ``mcp-test`` realm, for tests and the demo.

``install_keycloak()`` fetches the distribution from Maven Central once (``tools/keycloak/fetch.sh``,
cached); ``KeycloakServer(home, find_jdk(21), log).start()`` runs it on a free port of
``http_host`` (loopback, or the real node's ``host_ip`` so that pods reach it) and imports the
realm (``tools/keycloak/realm-mcp-test.json``: user ``alice``, the public client ``mcp-client``,
the confidential ``mcp-proxy`` allowed to exchange tokens for the audience ``mcp-server``, or
``mcp-server-v2``: the second target an MCPExternalAuthConfig update can switch to).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from devcluster.paths import checkout

REALM = "mcp-test"
USER, PASSWORD = "alice", "alice-password"
PROXY_CLIENT_ID, PROXY_CLIENT_SECRET = "mcp-proxy", "mcp-proxy-secret-4f1d9a"
TARGET_AUDIENCE = "mcp-server"
#: the other audience ``mcp-proxy`` may exchange for (the phase-8 update switches to it)
SECOND_AUDIENCE = "mcp-server-v2"

_progress: Callable[[str], None] = lambda message: print(  # noqa: E731
    f"[keycloak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True
)


def set_progress(report: Callable[[str], None]) -> None:
    """Where progress lines go (tests pass a function that prints past pytest's capture)."""
    global _progress
    _progress = report


def progress(message: str) -> None:
    _progress(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def realm_file() -> Path:
    return checkout() / "tools" / "keycloak" / "realm-mcp-test.json"


def java_major(java_home: Path) -> int | None:
    """Feature version of the JDK at ``java_home`` (from its ``release`` file, else ``java``)."""
    release = java_home / "release"
    if release.is_file():
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
        if m:
            return int(m.group(1))
    java = java_home / "bin" / "java"
    if not os.access(java, os.X_OK):
        return None
    out = subprocess.run(
        [str(java), "-XshowSettings:properties", "-version"], capture_output=True, text=True, check=False
    ).stderr
    m = re.search(r"java\.specification\.version = (\d+)", out)
    return int(m.group(1)) if m else None


def find_jdk(minimum: int = 21) -> Path:
    """A JDK ≥ ``minimum``: ``$JAVA_HOME`` if good enough, else the newest under /usr/lib/jvm."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates.extend(sorted((p for p in jvm.iterdir() if p.is_dir()), reverse=True))
    found = [(java_major(p) or 0, p) for p in candidates if (p / "bin" / "java").exists()]
    good = [(v, p) for v, p in found if v >= minimum]
    if not good:
        seen = ", ".join(f"{p} ({v or '?'})" for v, p in found) or "none"
        raise RuntimeError(
            f"Keycloak 26 needs a JDK >= {minimum}; found {seen}. Install one under /usr/lib/jvm "
            "or point JAVA_HOME at it."
        )
    if os.environ.get("JAVA_HOME") and good[0][1] == Path(os.environ["JAVA_HOME"]):
        return good[0][1]
    return max(good)[1]


def install_keycloak() -> Path:
    """Fetch (cached) Keycloak with ``tools/keycloak/fetch.sh``; returns its home directory."""
    script = checkout() / "tools" / "keycloak" / "fetch.sh"
    progress("Keycloak: checking the cached install (first run downloads ~170 MB with Maven)")
    started = time.monotonic()
    proc = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:  # relay the script's progress live
        progress("  " + line.rstrip())
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"tools/keycloak/fetch.sh failed with exit code {proc.returncode}")
    home = Path(out.strip().splitlines()[-1])
    progress(f"Keycloak: install at {home} ({time.monotonic() - started:.1f} s)")
    return home


def _set_pdeathsig() -> None:  # runs in the child before exec: die with the test process
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` and its descendants, in KiB (from /proc)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
    return total


class KeycloakServer:
    """A real Keycloak in dev mode on loopback with the ``mcp-test`` realm imported.

    ``start-dev`` with an in-memory H2 database (``--db=dev-mem``), so every start imports the
    realm afresh; the install is shared and reused between runs (a file lock serialises the
    start-up build of concurrent sessions).
    """

    def __init__(self, home: Path, java_home: Path, log_path: Path, *, http_host: str = "127.0.0.1") -> None:
        self.home = home
        self.java_home = java_home
        self.log_path = log_path
        #: where Keycloak listens and the address in every URL (and so in the tokens' ``iss``);
        #: pods need an address of the host they can reach (``real_cluster.node.host_ip``)
        self.http_host = http_host
        self.port = free_port()
        self.management_port = free_port()
        self.base_url = f"http://{http_host}:{self.port}"
        self.issuer = f"{self.base_url}/realms/{REALM}"
        self.token_url = f"{self.issuer}/protocol/openid-connect/token"
        self.jwks_url = f"{self.issuer}/protocol/openid-connect/certs"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self.rss_kib_after_start: int | None = None

    @property
    def version(self) -> str:
        """The distribution's version (``version.txt`` says ``Keycloak - Version 26.7.3``)."""
        text = (self.home / "version.txt").read_text() if (self.home / "version.txt").exists() else ""
        m = re.search(r"(\d+\.\d+\.\d+\S*)", text)
        return m.group(1) if m else "?"

    def start(self, timeout: float = 300.0) -> KeycloakServer:
        import_dir = self.home / "data" / "import"
        import_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.home.parent / ".start.lock"
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                progress("Keycloak: another session is starting this install; waiting for its lock")
                fcntl.flock(lock, fcntl.LOCK_EX)
            shutil.copyfile(realm_file(), import_dir / f"{REALM}-realm.json")
            env = {
                **os.environ,
                "JAVA_HOME": str(self.java_home),
                "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
                "KC_BOOTSTRAP_ADMIN_PASSWORD": "admin-test-only",
            }
            env.pop("JAVA_OPTS", None)
            cmd = [
                str(self.home / "bin" / "kc.sh"),
                "start-dev",
                f"--http-host={self.http_host}",
                f"--http-port={self.port}",
                f"--http-management-port={self.management_port}",
                "--hostname-strict=false",
                "--health-enabled=true",
                "--db=dev-mem",
                "--import-realm",
            ]
            progress(
                f"Keycloak {self.version}: starting on {self.http_host}:{self.port} (log: {self.log_path})"
            )
            started = time.monotonic()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    cwd=self.home,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_set_pdeathsig,
                )
            try:
                self._wait_ready(started, timeout)
            except BaseException:
                self.stop()
                raise
        self.startup_seconds = time.monotonic() - started
        self.rss_kib_after_start = rss_kib(self.proc.pid)
        progress(
            f"Keycloak {self.version}: ready in {self.startup_seconds:.1f} s, "
            f"RSS {self.rss_kib_after_start / 1024:.0f} MiB"
        )
        return self

    def _wait_ready(self, started: float, timeout: float) -> None:
        assert self.proc is not None
        # the management interface listens where the HTTP one does
        ready_url = f"http://{self.http_host}:{self.management_port}/health/ready"
        next_note = started + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Keycloak exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    r = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5)
                    if r.status_code == 200:
                        return
            now = time.monotonic()
            if now - started > timeout:
                raise RuntimeError(f"Keycloak not ready after {timeout:.0f} s:\n{self.log_tail()}")
            if now >= next_note:
                progress(f"Keycloak: still starting ({now - started:.0f} s)")
                next_note = now + 15
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        progress("Keycloak: stopped")

    # -- tokens -----------------------------------------------------------------------------

    def password_token(
        self, client_id: str = "mcp-client", username: str = USER, password: str = PASSWORD
    ) -> str:
        r = httpx.post(
            self.token_url,
            data={
                "grant_type": "password",
                "client_id": client_id,
                "username": username,
                "password": password,
            },
            timeout=30,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])
