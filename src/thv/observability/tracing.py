"""OpenTelemetry set-up from the standard ``OTEL_*`` environment variables.

Traces are exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (``OTEL_TRACES_EXPORTER=none`` turns it off);
``OTEL_SERVICE_NAME`` names the service (default ``thv-operator``).
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure_tracing(
    default_service: str = "thv-operator", extra: SpanProcessor | None = None
) -> TracerProvider:
    """Install a TracerProvider (once) and return it."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if extra is not None:
            current.add_span_processor(extra)
        return current
    service = os.environ.get("OTEL_SERVICE_NAME", default_service)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint and os.environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if extra is not None:
        provider.add_span_processor(extra)
    trace.set_tracer_provider(provider)
    return provider
