"""Tracing: delivery spans are children of the publisher's span, coalesced publishers and
earlier attempts are links, and no event data reaches span attributes."""

from __future__ import annotations

import anyio
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bus import Bus, RetryPolicy, current_delivery

from .helpers import KeyEvent, OtherEvent, Recorder


def deliveries(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("bus.deliver")]


@pytest.mark.anyio
async def test_a_delivery_span_is_a_child_of_the_publishers_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    inner: Recorder[trace.SpanContext] = Recorder()

    async def handler(event: KeyEvent) -> None:
        with tracer.start_as_current_span("handler work") as span:
            inner.add(span.get_span_context())

    async with Bus(tracer_provider=provider) as bus:
        bus.subscribe(KeyEvent, handler, name="hasher")
        with tracer.start_as_current_span("watch event") as publisher:
            await bus.publish(KeyEvent(kind="MCPServer", key="ns/name"))
        await inner.wait_len(1)
    (span,) = deliveries(exporter)
    assert span.name == "bus.deliver hasher"
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert span.parent.span_id == publisher.get_span_context().span_id
    assert span.context.trace_id == publisher.get_span_context().trace_id
    assert span.links == ()
    assert dict(span.attributes or {}) == {
        "bus.subscriber": "hasher",
        "bus.topic": f"{KeyEvent.__module__}.KeyEvent",
        "bus.key": "ns/name",
        "bus.attempt": 1,
        "bus.coalesced": 1,
        "bus.outcome": "success",
    }
    (work,) = [s for s in exporter.get_finished_spans() if s.name == "handler work"]
    assert work.parent is not None and work.parent.span_id == span.context.span_id


@pytest.mark.anyio
async def test_coalesced_publishers_are_linked(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    seen: Recorder[int] = Recorder()
    gate = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        seen.add(event.version)
        if event.version == 0:
            await gate.wait()

    async with Bus(tracer_provider=provider) as bus:
        bus.subscribe(KeyEvent, handler, name="h")
        await bus.publish(KeyEvent(key="a", version=0))
        await seen.wait_len(1)
        publishers = []
        for version in (1, 2, 3):
            with tracer.start_as_current_span(f"publish {version}") as span:
                await bus.publish(KeyEvent(key="a", version=version))
            publishers.append(span.get_span_context())
        await bus.publish(KeyEvent(key="a", version=4))  # no span: nothing to link
        gate.set()
        await seen.wait_len(2)
    second = deliveries(exporter)[-1]
    assert seen.items == [0, 4]
    assert second.parent is None  # the newest event's publisher had no span
    assert [link.context.span_id for link in second.links] == [p.span_id for p in publishers]
    assert (second.attributes or {})["bus.coalesced"] == 4


@pytest.mark.anyio
async def test_the_newest_publisher_is_the_parent_and_older_ones_are_links(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    seen: Recorder[int] = Recorder()

    async def handler(event: KeyEvent) -> None:
        seen.add(event.version)

    bus = Bus(tracer_provider=provider)
    bus.subscribe(KeyEvent, handler, name="h")
    spans = []
    for version in (1, 2):
        with tracer.start_as_current_span(f"publish {version}") as span:
            await bus.publish(KeyEvent(key="a", version=version))
        spans.append(span.get_span_context())
    async with bus:
        await seen.wait_len(1)
    (delivery,) = deliveries(exporter)
    assert delivery.parent is not None and delivery.parent.span_id == spans[1].span_id
    assert [link.context.span_id for link in delivery.links] == [spans[0].span_id]


@pytest.mark.anyio
async def test_a_retry_is_a_new_attempt_linked_to_the_failed_one(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    seen: Recorder[int] = Recorder()

    async def handler(event: KeyEvent) -> None:
        seen.add(current_delivery().attempt)
        if current_delivery().attempt == 1:
            raise RuntimeError("transient")

    async with Bus(tracer_provider=provider) as bus:
        bus.subscribe(KeyEvent, handler, name="h", retry=RetryPolicy(base=0.001, cap=0.001))
        with tracer.start_as_current_span("publish") as publisher:
            await bus.publish(KeyEvent(key="a"))
        await seen.wait_len(2)
    first, second = deliveries(exporter)
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "builtins.RuntimeError"
    assert (first.attributes or {})["bus.outcome"] == "retry"
    assert first.events == ()  # no exception event: its message might carry data
    for span in (first, second):
        assert span.parent is not None and span.parent.span_id == publisher.get_span_context().span_id
    assert (second.attributes or {})["bus.attempt"] == 2
    assert [link.context.span_id for link in second.links] == [first.context.span_id]


@pytest.mark.anyio
async def test_no_event_data_reaches_spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    secret = "s3cr3t-token-value"
    seen: Recorder[int] = Recorder()

    async def handler(event: OtherEvent) -> None:
        seen.add(current_delivery().attempt)
        if current_delivery().attempt == 1:
            raise ValueError(f"could not use {event.secret}")

    async with Bus(tracer_provider=provider) as bus:
        bus.subscribe(OtherEvent, handler, key=lambda e: e.name, retry=RetryPolicy(base=0.001, cap=0.001))
        await bus.publish(OtherEvent(name="cfg", secret=secret))
        await seen.wait_len(2)
    spans = deliveries(exporter)
    assert len(spans) == 2
    for span in spans:
        texts = [span.name, span.status.description or ""]
        texts += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            texts += [event.name, *(str(v) for v in (event.attributes or {}).values())]
        assert not any(secret in text for text in texts)
        assert not any("could not use" in text for text in texts)


@pytest.mark.anyio
async def test_the_handler_runs_with_the_publishers_baggage(provider: TracerProvider) -> None:
    got: Recorder[object] = Recorder()

    async def handler(event: KeyEvent) -> None:
        got.add(baggage.get_baggage("tenant"))

    async with Bus(tracer_provider=provider) as bus:
        bus.subscribe(KeyEvent, handler)
        token = otel_context.attach(baggage.set_baggage("tenant", "team-a"))
        try:
            await bus.publish(KeyEvent(key="a"))
        finally:
            otel_context.detach(token)
        await got.wait_len(1)
    assert got.items == ["team-a"]
