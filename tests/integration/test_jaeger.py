"""Traces in a real Jaeger (v2, built from its Go module): the operator's reconcile trace for a
config change, read back through Jaeger's HTTP query API; and ``scripts/dev up --jaeger``.

The operator normally installs its tracer provider from the ``OTEL_*`` environment once per
process (:func:`thv.observability.tracing.configure_tracing`). In a test session the global
provider may already exist (another test's in-memory exporter installed it) and a provider's
span processors cannot be removed, so an exporter installed for good would keep sending to a
Jaeger stopped at the end of this module. Instead :func:`exporting_to_jaeger` sets the operator's
``OTEL_*`` variables for the test, builds the same OTLP/HTTP ``BatchSpanProcessor`` that
``configure_tracing`` builds from them, and adds it through ``configure_tracing(extra=...)``
wrapped in :class:`ScopedExport`: it forwards only while the test runs, stamps the test's
``OTEL_SERVICE_NAME`` as the spans' resource (whichever provider created them), and is flushed
and shut down when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from test_operator import G, create_running_servers, get

from devcluster import ControlPlane, build_binaries, dev_down, read_state
from devcluster.controlplane import pid_alive, wait_for_exit
from devcluster.jaeger import Jaeger, build_jaeger, find_traces
from thv.observability.tracing import configure_tracing
from thvtest.capture import uncaptured
from thvtest.harness import run_operator, wait_for

N = 3
ROOT = "watch MCPExternalAuthConfig MODIFIED"


@pytest.fixture(scope="module")
def jaeger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """A real Jaeger (in-memory storage) on free loopback ports, built if needed."""
    with uncaptured(request):
        j = Jaeger(base_dir=tmp_path_factory.mktemp("jaeger")).start()
    try:
        yield j
    finally:
        j.stop()


# -- exporting the operator's spans to Jaeger for one test ---------------------------------------
def _with_resource(span: ReadableSpan, resource: Resource) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScopedExport(SpanProcessor):
    """The operator's OTLP exporter, built from the ``OTEL_*`` environment as
    ``configure_tracing`` builds it, active until :meth:`close`; spans carry the resource
    ``service.name = $OTEL_SERVICE_NAME``."""

    def __init__(self) -> None:
        self.resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "thv-operator")})
        # endpoint from OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces), delay from OTEL_BSP_SCHEDULE_DELAY
        self._batch = BatchSpanProcessor(OTLPSpanExporter())
        self._open = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._open:
            self._batch.on_end(_with_resource(span, self.resource))

    def close(self) -> None:
        """Export what is queued, then stop forwarding (for good)."""
        if self._open:
            self._open = False
            self._batch.shutdown()  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        self.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis) if self._open else True


@contextlib.contextmanager
def exporting_to_jaeger(monkeypatch: pytest.MonkeyPatch, jaeger: Jaeger, service: str) -> Iterator[None]:
    """Spans ending inside the block go to ``jaeger`` as ``service`` (see the module doc)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        # the first tracing set-up in this process: the operator's, minus an endpoint (its
        # exporter would outlive this Jaeger)
        with monkeypatch.context() as m:
            m.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
            m.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
            configure_tracing()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_http_endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    export = ScopedExport()
    provider = configure_tracing(extra=export)
    assert provider is trace.get_tracer_provider()
    try:
        yield
    finally:
        export.close()


# -- the reconcile trace -------------------------------------------------------------------------
def _tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span.get("tags", ()) if t["key"] == key), None)


def _parent(span: dict[str, Any]) -> str | None:
    return next((r["spanID"] for r in span.get("references", ()) if r["refType"] == "CHILD_OF"), None)


def _shape_problems(tr: dict[str, Any], key: str, ns: str) -> list[str]:
    """What the trace of the config change lacks (empty: complete). The expectations of
    ``test_observability.test_config_change_is_one_trace_across_servers_and_writes``, plus:
    the watch span is the trace's root and the applies write every server's ConfigMap."""
    spans = tr["spans"]
    ids = {s["spanID"]: s for s in spans}
    names = [s["operationName"] for s in spans]
    problems = []
    roots = [s for s in spans if s["operationName"] == ROOT and _tag(s, "k8s.key") == key]
    if len(roots) != 1 or _parent(roots[0]) is not None:
        problems.append(f"one root span {ROOT!r} with k8s.key={key}")
    if "bus.deliver hasher" not in names:
        problems.append("a 'bus.deliver hasher' span")
    if names.count("bus.deliver configmap-renderer") < N:
        problems.append(f"{N} 'bus.deliver configmap-renderer' spans")
    applies = [s for s in spans if s["operationName"] == "k8s apply configmaps"]
    if len(applies) < N:
        problems.append(f"{N} 'k8s apply configmaps' spans")
    for a in applies:  # each write hangs under a renderer delivery, which hangs under the watch event
        parent = ids.get(_parent(a) or "")
        if parent is None or parent["operationName"] != "bus.deliver configmap-renderer":
            problems.append(f"apply {a['spanID']} under a configmap-renderer delivery")
        elif _parent(parent) is None:
            problems.append(f"delivery {parent['spanID']} under a parent")
    paths = {_tag(a, "url.path") for a in applies}
    problems.extend(
        f"an apply of configmap t{i}-runconfig (url.path)"
        for i in range(N)
        if not any(str(p).endswith(f"/namespaces/{ns}/configmaps/t{i}-runconfig") for p in paths)
    )
    return problems


def _await_trace(
    jaeger: Jaeger, service: str, key: str, ns: str, since: float, timeout: float
) -> dict[str, Any]:
    """Poll Jaeger until a trace of the change has the full shape; fail listing what is missing."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        traces = jaeger.find_traces(service, operation=ROOT, tags={"k8s.key": key}, start=since - 1)
        # several MODIFIED events may follow the change (status writes); the change's trace is
        # the one that reached the renderers
        for tr in sorted(traces, key=lambda t: -len(t["spans"])):
            if not _shape_problems(tr, key, ns):
                return tr
        if traces:
            best = max(traces, key=lambda t: len(t["spans"]))
            seen = sorted(s["operationName"] for s in best["spans"])
            missing = _shape_problems(best, key, ns)
        else:
            missing = ["any trace"]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no complete reconcile trace in Jaeger after {timeout:.0f}s: missing {missing}; "
                f"{len(traces)} candidate trace(s), largest: {seen}; services {jaeger.services()}"
            )
        time.sleep(0.3)


def test_config_change_trace_is_found_in_jaeger(
    control_plane: ControlPlane,
    namespace: str,
    operator_kubeconfig_path: Path,
    jaeger: Jaeger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cp, ns = control_plane, namespace
    service = f"thv-operator-test-{uuid.uuid4().hex[:6]}"
    key = f"{ns}/test-external-auth"
    with (
        exporting_to_jaeger(monkeypatch, jaeger, service),
        run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True),
    ):
        create_running_servers(cp, ns, N)
        time.sleep(2)
        since = time.time()
        cp.api_request(
            "PATCH",
            f"{G}/{ns}/mcpexternalauthconfigs/test-external-auth",
            {"spec": {"tokenExchange": {"audience": "traced"}}},
        )
        wait_for(
            lambda: all(
                '"traced"'
                in (get(cp, f"/api/v1/namespaces/{ns}/configmaps/t{i}-runconfig") or {})
                .get("data", {})
                .get("runconfig.json", "")
                for i in range(N)
            ),
            60,
            "re-rendered",
        )
        # found while the operator runs: exported by the batch processor, not by a final flush
        t0 = time.monotonic()
        tr = _await_trace(jaeger, service, key, ns, since, timeout=30)
        found_after = time.monotonic() - t0
    print(
        f"reconcile trace {tr['traceID']} ({len(tr['spans'])} spans) found {found_after:.1f}s after the re-render"
    )
    assert service in jaeger.services()
    assert {p["serviceName"] for p in tr["processes"].values()} == {service}
    assert {s["traceID"] for s in tr["spans"]} == {tr["traceID"]}
    fetched = jaeger.get_trace(tr["traceID"])
    assert fetched is not None and len(fetched["spans"]) >= len(tr["spans"])
    for t in jaeger.find_traces(service, limit=1000):  # no secret in any exported attribute
        for s in t["spans"]:
            for tag in s["tags"]:
                assert "test-secret-value" not in str(tag["value"]), (s["operationName"], tag)


# -- scripts/dev up --jaeger -----------------------------------------------------------------------
def _dev(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-m", "devcluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _exports(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(.*)$", stdout, flags=re.M))


@pytest.fixture
def dev_state_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A THV state dir of its own (binaries built first, so `scripts/dev up` only starts things);
    whatever the test leaves running is stopped."""
    with uncaptured(request):
        build_binaries()
        build_jaeger()
    state_dir = tmp_path / "dev"
    try:
        yield state_dir
    finally:
        dev_down(state_dir)


def _all_pids(state: dict[str, Any]) -> list[int]:
    return [int(state["pid"]), int(state["jaeger"]["pid"]), *map(int, state["pids"].values())]


def _send_span(otlp_endpoint: str, service: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")))
    with provider.get_tracer("test").start_as_current_span("hello from the dev shell"):
        pass
    provider.shutdown()


def test_dev_up_jaeger_and_down(dev_state_dir: Path) -> None:
    t0 = time.monotonic()
    up = _dev("up", "--jaeger", "--state-dir", str(dev_state_dir))
    assert up.returncode == 0, up.stderr
    up_seconds = time.monotonic() - t0
    exports = _exports(up.stdout)
    state = read_state(dev_state_dir)
    assert state is not None and "jaeger" in state, up.stderr
    info = state["jaeger"]
    assert exports == {
        "KUBECONFIG": state["kubeconfig"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": info["otlp_http_endpoint"],
        "OTEL_SERVICE_NAME": "thv-operator",
    }
    assert f"Jaeger UI {info['ui_url']}" in up.stderr
    assert httpx.get(info["ui_url"], timeout=5).status_code == 200

    # the printed endpoint takes spans; the query API finds them
    service = f"dev-shell-{uuid.uuid4().hex[:6]}"
    _send_span(exports["OTEL_EXPORTER_OTLP_ENDPOINT"], service)
    traces = wait_for(lambda: find_traces(info["query_url"], service), 10, "the span in Jaeger")
    assert [s["operationName"] for s in traces[0]["spans"]] == ["hello from the dev shell"]

    again = _dev("up", "--jaeger", "--state-dir", str(dev_state_dir))
    assert again.returncode == 0 and "already running" in again.stderr
    assert _exports(again.stdout) == exports

    pids = _all_pids(dict(state))
    t1 = time.monotonic()
    down = _dev("down", "--state-dir", str(dev_state_dir))
    down_seconds = time.monotonic() - t1
    assert down.returncode == 0 and "stopped" in down.stderr, down.stderr
    assert all(wait_for_exit(pid, 10) for pid in pids), [p for p in pids if pid_alive(p)]
    assert read_state(dev_state_dir) is None
    assert not list(dev_state_dir.glob("thv-*")), list(dev_state_dir.iterdir())
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{info['query_url']}/api/services", timeout=2)
    print(f"scripts/dev up --jaeger {up_seconds:.1f}s, scripts/dev down {down_seconds:.1f}s")


def test_dev_jaeger_dies_with_a_killed_daemon(dev_state_dir: Path) -> None:
    up = _dev("up", "--jaeger", "--state-dir", str(dev_state_dir))
    assert up.returncode == 0, up.stderr
    state = read_state(dev_state_dir)
    assert state is not None and "jaeger" in state
    pids = _all_pids(dict(state))
    os.kill(state["pid"], signal.SIGKILL)  # no cleanup runs: PR_SET_PDEATHSIG must take them down
    assert all(wait_for_exit(pid, 10) for pid in pids), [p for p in pids if pid_alive(p)]
    down = _dev("down", "--state-dir", str(dev_state_dir))
    assert down.returncode == 0 and "no local cluster was running" in down.stderr
    assert not list(dev_state_dir.glob("thv-*")), list(dev_state_dir.iterdir())  # reaped
