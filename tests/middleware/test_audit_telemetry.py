"""Audit events and MCP telemetry, through the proxy with the official MCP SDK client."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import NotRequired, TypedDict, cast

import httpx
import pytest
from chainlib import drive
from mw_testlib import running, session
from opentelemetry.sdk.metrics.export import Sum
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from thv.api import runconfig as rc
from thv.middleware.audit import Auditor
from thv.middleware.authz import CedarAuthorizer
from thv.middleware.chain import McpChain
from thv.middleware.telemetry import McpTelemetry

pytestmark = pytest.mark.anyio
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Source(TypedDict):
    type: str
    value: str
    extra: dict[str, str]


class _Target(TypedDict):
    endpoint: str
    method: str
    name: NotRequired[str]
    type: str


class _Metadata(TypedDict):
    extra: dict[str, object]


class _Request(TypedDict, total=False):
    jsonrpc: str
    id: int
    method: str
    params: dict[str, object]


class _Data(TypedDict, total=False):
    request: _Request
    response: object


class _AuditEvent(TypedDict):
    """One line of the audit log (:meth:`thv.middleware.audit.Auditor.event`), as decoded."""

    time: str
    level: str
    msg: str
    audit_id: str
    type: str
    logged_at: str
    outcome: str
    component: str
    source: _Source
    subjects: dict[str, str]
    target: _Target
    metadata: _Metadata
    data: NotRequired[_Data]


def _events(log: str) -> list[_AuditEvent]:
    return [cast(_AuditEvent, json.loads(line)) for line in log.splitlines()]


async def test_one_event_per_operation_and_no_token() -> None:
    sink = io.StringIO()
    auditor = Auditor(
        rc.AuditConfig(include_request_data=True, include_response_data=True, max_data_size=400), out=sink
    )
    authz = CedarAuthorizer(['permit(principal, action, resource) unless { resource == Tool::"add" };'])
    chain = McpChain(auditor=auditor, authorizer=authz)
    with running("streamable-http", chain) as url:
        async with session(url, "streamable-http", "alice-token") as s:
            await s.list_tools()
            await s.call_tool("echo", {"text": "small"})
            await s.call_tool("echo", {"text": "x" * 1000})  # request bigger than max_data_size
            with pytest.raises(Exception):  # noqa: B017 - the SDK's MCPError
                await s.call_tool("add", {"a": 1, "b": 2})
    everything = _events(sink.getvalue())
    # the SDK's standalone GET stream and its closing DELETE are audited too (not MCP messages)
    assert {e["type"] for e in everything} - {"sse_connection", "http_request"} != set()
    events = [e for e in everything if e["type"] not in ("sse_connection", "http_request")]
    kinds = [(e["type"], e["outcome"]) for e in events]
    assert kinds == [
        ("mcp_initialize", "success"),
        ("mcp_request", "success"),  # notifications/initialized
        ("mcp_tools_list", "success"),
        ("mcp_tool_call", "success"),
        ("mcp_tool_call", "success"),
        ("mcp_tool_call", "denied"),
    ]
    call = events[3]
    assert call["subjects"] == {"user_id": "alice", "user": "alice"}
    assert call["target"] == {"endpoint": "/mcp", "method": "tools/call", "name": "echo", "type": "tool"}
    assert call["component"] == "toolhive-api" and call["source"]["type"] == "network"
    assert call["data"]["request"]["params"]["arguments"] == {"text": "small"}
    assert "small" in json.dumps(call["data"]["response"])
    assert "data" not in events[4] or "request" not in events[4]["data"]
    assert isinstance(call["metadata"]["extra"]["duration_ms"], int)
    logged = sink.getvalue()
    assert "alice-token" not in logged and "Bearer" not in logged


async def test_application_error_filters_and_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "audit.log"
    auditor = Auditor(rc.AuditConfig(log_file=str(log_file), event_types=["mcp_tool_call"]))
    chain = McpChain(auditor=auditor)
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}'
    await drive(chain, call, response=b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"boom"}}')
    await drive(
        chain,
        b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
        response=b'{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}',
    )
    await drive(chain, call, status=500, response=b"oops")
    auditor.close()
    events = _events(log_file.read_text())
    assert [(e["type"], e["outcome"]) for e in events] == [
        ("mcp_tool_call", "application_error"),
        ("mcp_tool_call", "error"),
    ]
    assert stat.S_IMODE(os.stat(log_file).st_mode) == 0o600


def _telemetry(exporter: InMemorySpanExporter, rate: float = 1.0, *, tracing: bool = True) -> McpTelemetry:
    config = rc.TelemetryConfig(
        endpoint="collector:4318",
        service_name="demo",
        tracing_enabled=tracing,
        sampling_rate=rate,
        enable_prometheus_metrics_path=True,
    )
    return McpTelemetry(
        config, server_name="demo", transport="streamable-http", span_processor=SimpleSpanProcessor(exporter)
    )


async def test_spans_per_operation_continue_the_callers_trace() -> None:
    exporter = InMemorySpanExporter()
    chain = McpChain(telemetry=_telemetry(exporter))
    with running("streamable-http", chain) as url:
        async with session(url, "streamable-http") as s:
            await s.call_tool("echo", {"text": "hi"})
        headers = {
            "Authorization": "Bearer alice-token",
            "traceparent": TRACEPARENT,
            "Accept": "application/json, text/event-stream",
        }
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "c", "version": "1"},
            },
        }
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/mcp", json=body, headers=headers)).status_code == 200
            metrics = (await http.get("/metrics")).text
    spans = {s.name: s for s in exporter.get_finished_spans()}
    call = spans["tools/call echo"]
    assert call.attributes is not None
    assert call.attributes["mcp.method.name"] == "tools/call"
    assert call.attributes["gen_ai.tool.name"] == "echo"
    assert call.attributes["mcp.server.name"] == "demo"
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["thv.mcp.outcome"] == "success"
    assert "hi" not in json.dumps(dict(call.attributes))  # never the arguments
    init = spans["initialize c"]
    assert f"{init.context.trace_id:032x}" == TRACEPARENT.split("-")[1]
    assert init.parent is not None and f"{init.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
    assert (
        'toolhive_mcp_requests_total{mcp_method="tools/call",mcp_resource_id="echo",method="POST",server="demo",status="success",status_code="200",transport="streamable-http"} 1.0'
        in metrics
    )


async def test_sampling_rate_and_disabled_tracing() -> None:
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}'
    exporter = InMemorySpanExporter()
    chain = McpChain(telemetry=_telemetry(exporter, rate=0.0))
    for _ in range(20):
        await drive(chain, call, response=b'{"jsonrpc":"2.0","id":1,"result":{}}')
    assert exporter.get_finished_spans() == ()  # rate 0: no root is sampled
    exporter = InMemorySpanExporter()
    telemetry = _telemetry(exporter, tracing=False)
    assert telemetry.tracer is None
    chain = McpChain(telemetry=telemetry)
    await drive(chain, call, response=b'{"jsonrpc":"2.0","id":1,"result":{}}')
    assert exporter.get_finished_spans() == ()
    assert b"toolhive_mcp_tool_calls_total" in telemetry.metrics()[0]  # metrics still count


async def test_otel_metrics_when_enabled() -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    config = rc.TelemetryConfig(endpoint="collector:4318", metrics_enabled=True, tracing_enabled=False)
    telemetry = McpTelemetry(config, server_name="demo", transport="sse", metric_reader=reader)
    chain = McpChain(telemetry=telemetry)
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}'
    await drive(chain, call, response=b'{"jsonrpc":"2.0","id":1,"result":{}}')
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"toolhive_mcp_requests", "toolhive_mcp_request_duration", "toolhive_mcp_tool_calls"} <= set(names)
    tool_calls = names["toolhive_mcp_tool_calls"].data
    assert isinstance(tool_calls, Sum)  # a counter
    point = next(iter(tool_calls.data_points))
    assert dict(point.attributes or {}) == {"server": "demo", "tool": "t", "status": "success"}
    telemetry.shutdown()
    disabled = McpTelemetry(rc.TelemetryConfig(endpoint="collector:4318", metrics_enabled=False))
    assert disabled.meter_provider is None and disabled.tracer is None


async def test_requests_that_are_not_mcp_messages_are_audited_as_upstream() -> None:
    sink = io.StringIO()
    chain = McpChain(auditor=Auditor(rc.AuditConfig(), out=sink))
    await drive(chain, b"", method="GET", content_type="text/event-stream", response=b": ping\n\n")
    await drive(chain, b"{not json", status=400, response=b"no")
    await drive(chain, b"", method="DELETE", status=200)
    events = _events(sink.getvalue())
    assert [(e["type"], e["outcome"], e["target"]["method"]) for e in events] == [
        ("http_request", "success", "GET"),  # no Accept: text/event-stream here
        ("http_request", "failure", "POST"),
        ("http_request", "success", "DELETE"),
    ]


async def test_sse_connection_event_when_the_stream_opens() -> None:
    sink = io.StringIO()
    chain = McpChain(auditor=Auditor(rc.AuditConfig(), out=sink))
    with running("sse", chain) as url:
        async with session(url, "sse") as s:
            await s.list_tools()
    types = [e["type"] for e in _events(sink.getvalue())]
    assert types[0] == "sse_connection"
    assert "mcp_tools_list" in types and "mcp_initialize" in types


async def test_environment_variables_and_custom_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_REGION", "eu-1")
    exporter = InMemorySpanExporter()
    config = rc.TelemetryConfig(
        endpoint="collector:4318",
        tracing_enabled=True,
        sampling_rate=1.0,
        environment_variables=["DEPLOY_REGION", "NOT_SET_ANYWHERE"],
        custom_attributes={"team": "mcp"},
    )
    telemetry = McpTelemetry(config, server_name="demo", span_processor=SimpleSpanProcessor(exporter))
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}'
    await drive(McpChain(telemetry=telemetry), call, response=b'{"jsonrpc":"2.0","id":1,"result":{}}')
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["environment.DEPLOY_REGION"] == "eu-1"
    assert "environment.NOT_SET_ANYWHERE" not in span.attributes
    assert span.resource.attributes["team"] == "mcp" and span.resource.attributes["service.name"] == "demo"
