"""Jaeger v2 all-in-one (in-memory storage) on loopback, for tests and ``scripts/dev up --jaeger``.

The binary is built from its Go module by ``tools/jaeger/build.sh`` (cached). :class:`Jaeger`
picks free ports on 127.0.0.1 at start, writes a Jaeger v2 (OpenTelemetry-collector) config to
its data directory and runs::

    receivers:  otlp (HTTP, and gRPC unless disabled)
    pipeline:   otlp -> batch -> jaeger_storage_exporter -> memory store
    extensions: jaeger_storage (memory), jaeger_query (HTTP API + UI, gRPC API)

No other port is opened: the collector's own metrics endpoint (:8888) and Jaeger's self-tracing
(OTLP to localhost:4317) are off, and ``OTEL_*`` variables are removed from its environment.
The Go module carries no UI assets, so ``/`` serves Jaeger's placeholder page; the HTTP query
API (``/api/services``, ``/api/traces``, ``/api/traces/<id>``) is complete.

Lifecycle, as for :class:`~devcluster.controlplane.ControlPlane`: the process gets
``PR_SET_PDEATHSIG(SIGKILL)`` and dies with the *thread* that started it (start from the main
thread or, with :meth:`Jaeger.astart`, from the event-loop thread); ``stop()`` is idempotent
and also runs at exit; a data directory whose owner died is removed by the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self, TypedDict

import anyio
import anyio.to_thread
import httpx
import yaml

from devcluster import lifecycle
from devcluster.controlplane import child_setup, free_port
from devcluster.gobuild import run_build_script
from devcluster.lifecycle import ManagedProcesses, new_owned_dir
from devcluster.paths import find_tool_script

_DIR_PREFIX = "thv-jaeger-"
_STORE = "memstore"


class JaegerError(RuntimeError):
    """Jaeger could not be built or started (the message carries the log's tail)."""


class JaegerInfo(TypedDict):
    """Where a running Jaeger listens (recorded by ``scripts/dev up --jaeger`` in state.json)."""

    pid: int
    otlp_http_endpoint: str
    otlp_grpc_endpoint: str | None
    query_url: str
    ui_url: str
    log: str


def _say(msg: str) -> None:
    print(f"[jaeger] {msg}", file=sys.stderr, flush=True)


# -- binary --------------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where ``build.sh`` keeps built binaries (``$THV_CACHE_DIR/jaeger``)."""
    return Path(os.environ.get("THV_CACHE_DIR") or Path.home() / ".cache" / "thv") / "jaeger"


def build_jaeger(*, quiet: bool = False) -> Path:
    """Build (or reuse from the cache) the ``jaeger`` binary and return its path.

    Order: ``$THV_JAEGER_BIN`` (the binary); ``tools/jaeger/build.sh`` (progress on stderr; a
    cold build takes ~6 min); without a source checkout, the newest binary in :func:`cache_root`.
    """
    t0 = time.monotonic()
    env_bin = os.environ.get("THV_JAEGER_BIN")
    if env_bin:
        path = Path(env_bin)
    elif (script := find_tool_script("jaeger")) is not None:
        path = run_build_script(script, JaegerError, quiet=quiet)
    else:
        found = sorted(
            (p for p in cache_root().glob("*/bin/jaeger") if os.access(p, os.X_OK)),
            key=lambda p: p.stat().st_mtime,
        )
        if not found:
            raise JaegerError(
                f"no jaeger binary: no checkout (THV_CHECKOUT) and none cached under {cache_root()}; set THV_JAEGER_BIN"
            )
        path = found[-1]
    if not os.access(path, os.X_OK):
        raise JaegerError(f"{path} is not an executable jaeger binary")
    if not quiet:
        _say(f"binary {path} ({time.monotonic() - t0:.1f}s)")
    return path


# -- config --------------------------------------------------------------------------------------
def render_config(
    *,
    otlp_http_port: int,
    otlp_grpc_port: int | None,
    query_http_port: int,
    query_grpc_port: int,
    max_traces: int = 100_000,
    log_level: str = "info",
    otlp_host: str = "127.0.0.1",
) -> dict[str, Any]:
    """A Jaeger v2 config (the shape of upstream's ``cmd/jaeger/internal/all-in-one.yaml``) with
    only OTLP receivers, in-memory storage and the query extension, all on 127.0.0.1 (the OTLP
    receivers on ``otlp_host``)."""
    protocols: dict[str, Any] = {"http": {"endpoint": f"{otlp_host}:{otlp_http_port}"}}
    if otlp_grpc_port is not None:
        protocols["grpc"] = {"endpoint": f"{otlp_host}:{otlp_grpc_port}"}
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                # level none: no Prometheus endpoint on :8888
                "metrics": {"level": "none"},
                "logs": {"level": log_level},
            },
        },
        "extensions": {
            "jaeger_storage": {"backends": {_STORE: {"memory": {"max_traces": max_traces}}}},
            "jaeger_query": {
                "storage": {"traces": _STORE},
                # on by default in v2: it would export Jaeger's own spans to localhost:4317
                "enable_tracing": False,
                "http": {"endpoint": f"127.0.0.1:{query_http_port}"},
                "grpc": {"endpoint": f"127.0.0.1:{query_grpc_port}"},
            },
        },
        "receivers": {"otlp": {"protocols": protocols}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": _STORE}},
    }


# -- query API -----------------------------------------------------------------------------------
def find_traces(
    query_url: str,
    service: str,
    *,
    operation: str | None = None,
    tags: Mapping[str, str] | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Traces of ``service`` from Jaeger's HTTP query API (``GET /api/traces``), newest first.

    ``operation``: a span name some span of the trace has; ``tags``: span tags that one span
    must all carry (e.g. ``{"k8s.key": "ns/name"}``); ``start``/``end``: Unix seconds (default:
    the last hour). Each trace is Jaeger's JSON: ``traceID``, ``spans`` (``spanID``,
    ``operationName``, ``references``, ``tags``, ``processID`` ...) and ``processes``.
    An unknown service gives ``[]``."""
    now = time.time()
    params: dict[str, str] = {
        "service": service,
        "start": str(int((start if start is not None else now - 3600) * 1_000_000)),
        "end": str(int((end if end is not None else now + 60) * 1_000_000)),
        "limit": str(limit),
    }
    if operation is not None:
        params["operation"] = operation
    if tags:
        params["tags"] = json.dumps(dict(tags))
    r = httpx.get(f"{query_url}/api/traces", params=params, timeout=timeout)
    if r.status_code == 404:  # older Jaegers answer 404 for a service they have not seen
        return []
    r.raise_for_status()
    data: list[dict[str, Any]] | None = r.json().get("data")
    return list(data or [])


def get_trace(query_url: str, trace_id: str, *, timeout: float = 10.0) -> dict[str, Any] | None:
    """One trace by id (``GET /api/traces/<id>``), or ``None`` if Jaeger has not got it."""
    r = httpx.get(f"{query_url}/api/traces/{trace_id}", timeout=timeout)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    data: list[dict[str, Any]] = r.json().get("data") or []
    return data[0] if data else None


def services(query_url: str, *, timeout: float = 10.0) -> list[str]:
    """The service names Jaeger has spans of (``GET /api/services``)."""
    r = httpx.get(f"{query_url}/api/services", timeout=timeout)
    r.raise_for_status()
    return sorted(r.json().get("data") or [])


# -- process-wide cleanup ------------------------------------------------------------------------
_live: set[Jaeger] = set()
_live_lock = threading.Lock()
_atexit_installed = False


def _stop_all() -> None:
    with _live_lock:
        running = list(_live)
    for j in running:
        with contextlib.suppress(Exception):
            j.stop()


def reap_stale_dirs(parent: Path) -> list[Path]:
    """Remove data directories under ``parent`` whose owner process is gone; returns them."""
    return lifecycle.reap_stale_dirs(parent, _DIR_PREFIX)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- Jaeger --------------------------------------------------------------------------------------
class Jaeger(ManagedProcesses):
    """One Jaeger v2 all-in-one with in-memory storage on free loopback ports.

    ``Jaeger().start()`` (or ``with Jaeger() as j``, ``await j.astart()``, ``async with``)
    returns once the query API answers and the OTLP/HTTP receiver accepts spans. Point an OTel
    SDK at :attr:`otlp_http_endpoint` (``OTEL_EXPORTER_OTLP_ENDPOINT``), read traces back with
    :meth:`find_traces`; ``stop()`` (idempotent) stops it and removes its data directory.
    """

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        binary: Path | None = None,
        otlp_grpc: bool = True,
        max_traces: int = 100_000,
        quiet: bool = False,
        keep_dir: bool = False,
        otlp_host: str = "127.0.0.1",
    ) -> None:
        """``base_dir``: parent of the data directory (config and log; default: the system temp
        dir); ``binary``: a prebuilt ``jaeger`` (default: :func:`build_jaeger`); ``otlp_grpc``:
        also open the OTLP/gRPC receiver; ``keep_dir``: leave the data directory after stop;
        ``otlp_host``: where the OTLP receivers listen (the real node's ``NODE_IP`` lets pods
        export to it; the query API stays on loopback)."""
        self.otlp_host = otlp_host
        self.base_dir = base_dir
        self.binary = binary
        self.otlp_grpc = otlp_grpc
        self.max_traces = max_traces
        self.quiet = quiet
        self.keep_dir = keep_dir
        self.otlp_http_port = 0
        self.otlp_grpc_port: int | None = None
        self.query_port = 0
        self.query_grpc_port = 0
        self.startup_seconds = 0.0
        self._dir: Path | None = None
        self._lock_fd: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._mutex = threading.RLock()

    # -- addresses -------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """The data directory (``config.yaml``, ``jaeger.log``)."""
        if self._dir is None:
            raise JaegerError("Jaeger has not been started")
        return self._dir

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.dir / "jaeger.log"

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver, for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the SDK
        appends ``/v1/traces``)."""
        return f"http://{self.otlp_host}:{self.otlp_http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str | None:
        """``http://127.0.0.1:<port>`` of the OTLP/gRPC receiver, or ``None`` when disabled."""
        return None if self.otlp_grpc_port is None else f"http://{self.otlp_host}:{self.otlp_grpc_port}"

    @property
    def query_url(self) -> str:
        """Base URL of the query service: the HTTP API under ``/api`` and the UI at ``/``."""
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def ui_url(self) -> str:
        return f"{self.query_url}/"

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def info(self) -> JaegerInfo:
        """Addresses and files, as recorded in ``scripts/dev up``'s state.json."""
        if self._popen is None:
            raise JaegerError("Jaeger has not been started")
        return {
            "pid": self._popen.pid,
            "otlp_http_endpoint": self.otlp_http_endpoint,
            "otlp_grpc_endpoint": self.otlp_grpc_endpoint,
            "query_url": self.query_url,
            "ui_url": self.ui_url,
            "log": str(self.log_path),
        }

    def check(self) -> None:
        """Raise :class:`JaegerError` (with the log's tail) if the process has exited."""
        if self._popen is None:
            raise JaegerError("Jaeger has not been started")
        rc = self._popen.poll()
        if rc is not None:
            raise JaegerError(f"jaeger exited with status {rc}; log {self.log_path}:\n{_tail(self.log_path)}")

    # -- queries ---------------------------------------------------------------------------------
    def find_traces(
        self,
        service: str,
        *,
        operation: str | None = None,
        tags: Mapping[str, str] | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """:func:`find_traces` on this Jaeger."""
        return find_traces(
            self.query_url, service, operation=operation, tags=tags, start=start, end=end, limit=limit
        )

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        return get_trace(self.query_url, trace_id)

    def services(self) -> list[str]:
        return services(self.query_url)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Self:
        """Build/locate the binary, start Jaeger on the calling thread, wait until ready."""
        if self.binary is None:
            self.binary = build_jaeger(quiet=self.quiet)
        t0 = time.monotonic()
        try:
            for attempt in range(3):
                self._spawn(first=attempt == 0)
                deadline = time.monotonic() + timeout
                while not self._ready(deadline):
                    time.sleep(0.05)
                if self.running:
                    break
                self._retry_or_raise(attempt)
        except BaseException:
            self._fail_cleanup()
            raise
        self._started(t0)
        return self

    async def astart(self, timeout: float = 30.0) -> Self:
        """:meth:`start` for async code (builds in a worker thread, spawns on the loop thread)."""
        if self.binary is None:
            self.binary = await anyio.to_thread.run_sync(lambda: build_jaeger(quiet=self.quiet))
        t0 = time.monotonic()
        try:
            for attempt in range(3):
                self._spawn(first=attempt == 0)
                deadline = time.monotonic() + timeout
                while True:
                    if await anyio.to_thread.run_sync(self._ready, deadline):
                        break
                    await anyio.sleep(0.05)
                if self.running:
                    break
                self._retry_or_raise(attempt)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._fail_cleanup)
            raise
        self._started(t0)
        return self

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s), then remove the data directory unless ``keep_dir``.
        Safe to call twice and from atexit."""
        with self._mutex:
            popen, self._popen = self._popen, None
            if popen is not None and popen.poll() is None:
                t0 = time.monotonic()
                try:
                    os.killpg(popen.pid, signal.SIGTERM)
                    popen.wait(10)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(popen.pid, signal.SIGKILL)
                    popen.wait(10)
                self._log(f"stopped in {time.monotonic() - t0:.1f}s")
            elif popen is not None:
                popen.wait()
            with _live_lock:
                _live.discard(self)
            if self._dir is not None and self._dir.exists() and not self.keep_dir:
                shutil.rmtree(self._dir, ignore_errors=True)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- internals -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        global _atexit_installed
        parent = self.base_dir or Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        for d in reap_stale_dirs(parent):
            self._log(f"removed stale data dir {d}")
        self._dir, self._lock_fd = new_owned_dir(parent, _DIR_PREFIX)
        with _live_lock:
            _live.add(self)
            if not _atexit_installed:
                _atexit_installed = True
                atexit.register(_stop_all)

    def _spawn(self, *, first: bool) -> None:
        """Pick free ports, write the config, start the process (on the calling thread)."""
        if first:
            if self._dir is not None:
                raise JaegerError("this Jaeger was already started; create a new one")
            self._prepare()
        assert self.binary is not None
        self.otlp_http_port = free_port()
        self.otlp_grpc_port = free_port() if self.otlp_grpc else None
        self.query_port = free_port()
        self.query_grpc_port = free_port()
        config = render_config(
            otlp_http_port=self.otlp_http_port,
            otlp_grpc_port=self.otlp_grpc_port,
            query_http_port=self.query_port,
            query_grpc_port=self.query_grpc_port,
            max_traces=self.max_traces,
            otlp_host=self.otlp_host,
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with self.log_path.open("ab") as log:
            log.write(
                f"==== {time.strftime('%H:%M:%S')} {self.binary} --config={self.config_path}\n".encode()
            )
            log.flush()
            self._popen = subprocess.Popen(
                [str(self.binary), f"--config=file:{self.config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=env,
                preexec_fn=child_setup(os.getpid()),
                start_new_session=True,
            )

    def _ready(self, deadline: float) -> bool:
        """True once ready, or once the process exited (the caller checks :attr:`running`);
        raises :class:`JaegerError` after ``deadline``."""
        if not self.running:
            return True
        try:
            q = httpx.get(f"{self.query_url}/api/services", timeout=2)
            # an empty OTLP/JSON export: 200 once the receiver is up (it starts after the
            # extensions, so the query API alone does not mean spans are accepted)
            r = httpx.post(
                f"{self.otlp_http_endpoint}/v1/traces",
                content=b'{"resourceSpans":[]}',
                headers={"Content-Type": "application/json"},
                timeout=2,
            )
            if q.status_code == 200 and r.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise JaegerError(
                f"jaeger not ready after its timeout; log {self.log_path}:\n{_tail(self.log_path)}"
            )
        return False

    def _retry_or_raise(self, attempt: int) -> None:
        """The process exited during start-up: retry on other ports if one was taken."""
        assert self._popen is not None
        rc = self._popen.wait()
        tail = _tail(self.log_path)
        self._popen = None
        if "address already in use" in tail and attempt < 2:
            self._log("a port was taken meanwhile; retrying on other ports")
            return
        raise JaegerError(f"jaeger exited with status {rc} during start-up; log {self.log_path}:\n{tail}")

    def _started(self, t0: float) -> None:
        self.startup_seconds = time.monotonic() - t0
        self._log(
            f"ready in {self.startup_seconds:.1f}s: OTLP/HTTP {self.otlp_http_endpoint}, "
            f"query {self.query_url}"
        )

    def _fail_cleanup(self) -> None:
        """Stop what started; keep the data dir (log) until the next start reaps it."""
        keep, self.keep_dir = self.keep_dir, True
        try:
            self.stop()
        finally:
            self.keep_dir = keep
        if self._dir is not None and self._dir.exists():
            self._log(f"start failed; log kept in {self.log_path} (removed by the next start)")

    def _log(self, msg: str) -> None:
        if not self.quiet:
            _say(msg)


__all__ = [
    "Jaeger",
    "JaegerError",
    "JaegerInfo",
    "build_jaeger",
    "cache_root",
    "find_traces",
    "get_trace",
    "reap_stale_dirs",
    "render_config",
    "services",
]
