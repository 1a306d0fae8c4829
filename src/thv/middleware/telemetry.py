"""MCP telemetry (upstream's ``telemetry`` middleware): a span per MCP operation, Prometheus metrics.

* Traces — only when ``tracingEnabled`` and an ``endpoint`` are set (the operator renders the
  OTel fields only for ``openTelemetry.enabled: true``): a dedicated TracerProvider exporting over
  OTLP/HTTP to ``endpoint`` (``http://`` if ``insecure``), service ``serviceName``, sampler
  ``ParentBased(TraceIdRatioBased(samplingRate))``. The parent is the caller's ``traceparent``
  (a sampled caller is always followed; without one, ``samplingRate`` decides). Span name
  ``<mcp method> <resource>`` (upstream's), kind SERVER, attributes ``mcp.method.name``,
  ``rpc.system.name``, ``jsonrpc.request.id``, ``mcp.server.name``, ``mcp.transport``,
  ``gen_ai.tool.name``/``mcp.tool.name`` or ``gen_ai.prompt.name`` or ``mcp.resource.uri``,
  ``http.response.status_code``, ``thv.mcp.outcome``, and ``environment.<VAR>`` for each variable
  ``environmentVariables`` lists (upstream); ``customAttributes`` join the resource. Never
  arguments, tokens or bodies.
* OTel metrics — with ``metricsEnabled`` and an ``endpoint``: the same counters and histogram
  exported over OTLP/HTTP (``/v1/metrics``).
* Metrics — with ``enablePrometheusMetricsPath``, ``GET /metrics`` on the proxy port (no token
  needed, as upstream) serves ``toolhive_mcp_requests_total``,
  ``toolhive_mcp_request_duration_seconds``, ``toolhive_mcp_tool_calls_total`` and
  ``toolhive_mcp_active_connections`` with upstream's labels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from thv.api import runconfig as rc
from thv.middleware.jsonrpc import McpRequest, id_key

__all__ = ["METRICS_PATH", "McpTelemetry"]

METRICS_PATH: Final = "/metrics"
_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_MAX_LABEL: Final = 128


def _label(value: str) -> str:
    return value[:_MAX_LABEL]


class McpTelemetry:
    def __init__(
        self,
        config: rc.TelemetryConfig,
        *,
        server_name: str = "",
        transport: str = "",
        span_processor: SpanProcessor | None = None,
        metric_reader: MetricReader | None = None,
    ) -> None:
        """``span_processor`` and ``metric_reader`` replace the OTLP exporters (tests)."""
        self.config = config
        self.server_name = server_name
        self.transport = transport
        self.provider: TracerProvider | None = None
        custom = config.custom_attributes if isinstance(config.custom_attributes, dict) else {}
        #: upstream's ``environment.<VAR>`` span attributes, for the variables the config lists
        self.environment = {
            f"environment.{name}": os.environ[name]
            for name in config.environment_variables or []
            if name in os.environ
        }
        self.tracer: trace.Tracer | None = None
        if config.tracing_enabled and (config.endpoint or span_processor is not None):
            rate = min(max(float(config.sampling_rate), 0.0), 1.0)
            self.provider = TracerProvider(
                resource=Resource.create(
                    {
                        **custom,
                        "service.name": config.service_name or server_name or "toolhive-mcp-proxy",
                        **({"service.version": config.service_version} if config.service_version else {}),
                    }
                ),
                sampler=ParentBased(TraceIdRatioBased(rate)),
            )
            if span_processor is not None:
                self.provider.add_span_processor(span_processor)
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                scheme = "http" if config.insecure else "https"
                self.provider.add_span_processor(
                    BatchSpanProcessor(
                        OTLPSpanExporter(
                            endpoint=f"{scheme}://{config.endpoint.rstrip('/')}/v1/traces",
                            headers=dict(config.headers or {}),
                        )
                    )
                )
            self.tracer = self.provider.get_tracer("thv.middleware.telemetry")
        resource = Resource.create(
            {**custom, "service.name": config.service_name or server_name or "toolhive-mcp-proxy"}
        )
        self.meter_provider: MeterProvider | None = None
        if config.metrics_enabled and (config.endpoint or metric_reader is not None):
            if metric_reader is None:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

                scheme = "http" if config.insecure else "https"
                metric_reader = PeriodicExportingMetricReader(
                    OTLPMetricExporter(
                        endpoint=f"{scheme}://{config.endpoint.rstrip('/')}/v1/metrics",
                        headers=dict(config.headers or {}),
                    )
                )
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[metric_reader])
            meter = self.meter_provider.get_meter("thv.middleware.telemetry")
            self.otel_requests = meter.create_counter("toolhive_mcp_requests", description="MCP requests")
            self.otel_duration = meter.create_histogram(
                "toolhive_mcp_request_duration", unit="s", description="MCP request duration"
            )
            self.otel_tool_calls = meter.create_counter(
                "toolhive_mcp_tool_calls", description="MCP tool calls"
            )
        self.registry: CollectorRegistry | None = None
        if config.enable_prometheus_metrics_path:
            self.registry = CollectorRegistry(auto_describe=True)
            labels = [
                "method",
                "status_code",
                "status",
                "mcp_method",
                "mcp_resource_id",
                "server",
                "transport",
            ]
            self.requests = Counter("toolhive_mcp_requests", "MCP requests", labels, registry=self.registry)
            self.duration = Histogram(
                "toolhive_mcp_request_duration_seconds",
                "MCP request duration",
                labels,
                buckets=_BUCKETS,
                registry=self.registry,
            )
            self.tool_calls = Counter(
                "toolhive_mcp_tool_calls",
                "MCP tool calls",
                ["server", "tool", "status"],
                registry=self.registry,
            )
            self.active = Gauge(
                "toolhive_mcp_active_connections",
                "Requests being served",
                ["server", "transport"],
                registry=self.registry,
            )

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    @property
    def serves_metrics(self) -> bool:
        return self.registry is not None

    def metrics(self) -> tuple[bytes, str]:
        assert self.registry is not None
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @contextmanager
    def connection(self) -> Iterator[None]:
        if self.registry is None:
            yield
            return
        gauge = self.active.labels(self.server_name, self.transport)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def start_span(self, request: McpRequest, headers: Mapping[str, str]) -> trace.Span | None:
        if self.tracer is None:
            return None
        parent = propagate.extract(dict(headers), context=otel_context.Context())
        name = f"{request.method} {request.resource_id}" if request.resource_id else request.method
        attributes: dict[str, str] = {
            "mcp.method.name": request.method,
            "rpc.system.name": "jsonrpc",
            "jsonrpc.protocol.version": "2.0",
            "mcp.server.name": self.server_name,
            "mcp.transport": self.transport,
            **self.environment,
        }
        if request.has_id:
            attributes["jsonrpc.request.id"] = id_key(request.id).strip('"')
        if request.method == "tools/call" and request.resource_id:
            attributes["gen_ai.tool.name"] = attributes["mcp.tool.name"] = request.resource_id
            attributes["gen_ai.operation.name"] = "execute_tool"
        elif request.method == "prompts/get" and request.resource_id:
            attributes["gen_ai.prompt.name"] = request.resource_id
        elif request.method.startswith("resources/") and request.resource_id:
            attributes["mcp.resource.uri"] = request.resource_id
        return self.tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)

    def finish(
        self,
        span: trace.Span | None,
        request: McpRequest,
        *,
        http_method: str,
        status: int,
        outcome: str,
        duration: float,
    ) -> None:
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("thv.mcp.outcome", outcome)
            if status >= 500 or outcome in ("error", "application_error"):
                span.set_status(trace.StatusCode.ERROR)
            elif status < 400 and outcome == "success":
                span.set_status(trace.StatusCode.OK)
            span.end()
        state = "success" if status < 400 and outcome == "success" else "error"
        if self.meter_provider is not None:
            attrs = {
                "method": http_method,
                "status_code": str(status),
                "status": state,
                "mcp_method": _label(request.method),
                "mcp_resource_id": _label(request.resource_id),
                "server": self.server_name,
                "transport": self.transport,
            }
            self.otel_requests.add(1, attrs)
            self.otel_duration.record(duration, attrs)
            if request.method == "tools/call":
                self.otel_tool_calls.add(
                    1, {"server": self.server_name, "tool": _label(request.resource_id), "status": state}
                )
        if self.registry is None:
            return
        labels = (
            http_method,
            str(status),
            state,
            _label(request.method),
            _label(request.resource_id),
            self.server_name,
            self.transport,
        )
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(duration)
        if request.method == "tools/call":
            self.tool_calls.labels(self.server_name, _label(request.resource_id), state).inc()
