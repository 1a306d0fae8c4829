"""Observability and leadership: one trace per change, health and metrics endpoints, and a
Lease so that only the leader writes."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_operator import SECRET, G, create, create_running_servers, extauth, get, server

from devcluster import ControlPlane
from thvtest.harness import OPERATOR_NS, OPERATOR_USER, run_operator, wait_for

N = 3


def test_config_change_is_one_trace_across_servers_and_writes(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path, spans: InMemorySpanExporter
) -> None:
    cp, ns = control_plane, namespace
    with run_operator(operator_kubeconfig_path, namespaces=[ns], use_configmap=True):
        create_running_servers(cp, ns, N)
        time.sleep(2)
        spans.clear()
        cp.api_request(
            "PATCH",
            f"{G}/{ns}/mcpexternalauthconfigs/test-external-auth",
            {"spec": {"tokenExchange": {"audience": "traced"}}},
        )

        def rerendered() -> bool:
            _, deps = cp.api_request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments")
            return all("traced" not in str(d) for d in deps["items"]) and all(
                '"traced"'
                in (get(cp, f"/api/v1/namespaces/{ns}/configmaps/t{i}-runconfig") or {})
                .get("data", {})
                .get("runconfig.json", "")
                for i in range(N)
            )

        wait_for(rerendered, 60, "re-rendered")
        time.sleep(1)
    finished = spans.get_finished_spans()
    roots = [
        s
        for s in finished
        if s.name == "watch MCPExternalAuthConfig MODIFIED"
        and s.attributes is not None
        and s.attributes.get("k8s.key") == f"{ns}/test-external-auth"
    ]
    assert roots, sorted({s.name for s in finished})
    by_trace: dict[int, list[Any]] = {}
    for s in finished:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    # the trace of the spec change: watch event → every subscriber → each API write
    best = max((by_trace[r.context.trace_id] for r in roots), key=len)
    names = [s.name for s in best]
    assert "bus.deliver hasher" in names
    assert names.count("bus.deliver configmap-renderer") >= N, names
    applies = [s for s in best if s.name == "k8s apply configmaps"]
    assert len(applies) >= N, names
    ids = {s.context.span_id: s for s in best}
    for a in applies:  # each write hangs under a renderer delivery, which hangs under the watch event
        parent = ids[a.parent.span_id]
        assert parent.name == "bus.deliver configmap-renderer"
        assert parent.parent is not None
    for s in finished:
        for value in (s.attributes or {}).values():
            assert "test-secret-value" not in str(value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_ready_and_metrics(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    port = _free_port()
    with run_operator(
        operator_kubeconfig_path,
        namespaces=[namespace],
        use_configmap=True,
        health_address=("127.0.0.1", port),
    ):
        create(control_plane, f"/api/v1/namespaces/{namespace}/secrets", SECRET)
        create(control_plane, f"{G}/{namespace}/mcpexternalauthconfigs", extauth("m"))
        wait_for(lambda: _http(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "/readyz")
        assert _http(f"http://127.0.0.1:{port}/healthz") == (200, "ok")
        metrics = wait_for(
            lambda: (
                (m := _http(f"http://127.0.0.1:{port}/metrics")[1])
                and 'thv_reconcile_total{result="success",subscriber="hasher"}' in m
                and m
            ),
            30,
            "metrics",
        )
        for name in (
            "thv_reconcile_seconds_bucket",
            "thv_api_requests_total",
            "thv_watch_events_total",
            "thv_bus_queue_depth",
            "thv_store_objects",
        ):
            assert name in metrics, name


def test_only_the_leader_writes_and_leadership_moves(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig_path: Path
) -> None:
    cp, ns = control_plane, namespace
    lease_ns = OPERATOR_NS
    cp.api_request(
        "DELETE",
        f"/apis/coordination.k8s.io/v1/namespaces/{lease_ns}/leases/toolhive-operator-leader-election",
    )
    with run_operator(
        operator_kubeconfig_path, namespaces=[ns], use_configmap=True, leader_election_namespace=lease_ns
    ) as first:
        wait_for(lambda: first.operator.ready.is_set(), 30, "first elected")
        with run_operator(
            operator_kubeconfig_path, namespaces=[ns], use_configmap=True, leader_election_namespace=lease_ns
        ) as second:
            time.sleep(3)
            assert not second.operator.ready.is_set(), "two leaders"
            create(cp, f"/api/v1/namespaces/{ns}/secrets", SECRET)
            create(cp, f"{G}/{ns}/mcpexternalauthconfigs", extauth("test-external-auth"))
            create(cp, f"{G}/{ns}/mcpservers", server("led"))
            wait_for(
                lambda: (
                    (s := get(cp, f"{G}/{ns}/mcpservers/led"))
                    and (s.get("status") or {}).get("phase") == "Running"
                ),
                90,
                "Running under the leader",
            )
            assert second.operator.ctx.applier.writes == 0 and second.operator.ctx.status.writes == 0
            assert first.operator.ctx.applier.writes > 0
            assert first.operator.elector is not None

            async def crash() -> None:  # the leader dies without releasing the lease
                return None

            first.operator.elector.release = crash  # type: ignore[method-assign]
            first.future.cancel()
            t0 = time.monotonic()
            wait_for(lambda: second.operator.ready.is_set(), 40, "second takes over")
            handover = time.monotonic() - t0
            assert handover < 15 + 5, handover
            mark = cp.audit.mark()
            cp.api_request(
                "PATCH",
                f"{G}/{ns}/mcpexternalauthconfigs/test-external-auth",
                {"spec": {"tokenExchange": {"audience": "after-handover"}}},
            )
            wait_for(
                lambda: (
                    '"after-handover"'
                    in (get(cp, f"/api/v1/namespaces/{ns}/configmaps/led-runconfig") or {})
                    .get("data", {})
                    .get("runconfig.json", "")
                ),
                60,
                "new leader",
            )
            assert cp.audit.writes(mark, user=OPERATOR_USER, namespace=ns)
