"""OpenTelemetry for deliveries: the publisher's context travels with the event.

A delivery runs in a ``CONSUMER`` span named ``bus.deliver <subscriber>``, started in the
context captured when the delivered (newest) event was published, so the span is a child of the
publisher's span and the handler sees the publisher's baggage. Publishers of events coalesced
into the delivery, and an earlier attempt of the same delivery, are span *links*. Attributes
carry names, keys and counts only, never the event's fields: events may hold secrets. For the
same reason a failed delivery records the exception's type (``error.type``), not its message.

Only ``opentelemetry-api`` is used: without an SDK configured every call is a no-op.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_COALESCED",
    "ATTR_KEY",
    "ATTR_OUTCOME",
    "ATTR_SUBSCRIBER",
    "ATTR_TOPIC",
    "MAX_LINKS",
    "capture",
    "delivery_span",
    "mark_failed",
    "span_context",
]

#: the subscription's name
ATTR_SUBSCRIBER = "bus.subscriber"
#: ``str()`` of the delivery's key
ATTR_KEY = "bus.key"
#: qualified name of the topic (the event class subscribed to)
ATTR_TOPIC = "bus.topic"
#: 1 for the first attempt at a key's events, counting up while deliveries fail
ATTR_ATTEMPT = "bus.attempt"
#: how many published events this delivery stands for (1: no coalescing)
ATTR_COALESCED = "bus.coalesced"
#: the :class:`~bus.Outcome` of the delivery
ATTR_OUTCOME = "bus.outcome"

#: most links kept on one delivery (the first publishers win: they started the wait)
MAX_LINKS = 32

_TRACER_NAME = "bus"


def capture() -> otel_context.Context:
    """Return the caller's OpenTelemetry context (taken at publish time)."""
    return otel_context.get_current()


def span_context(ctx: otel_context.Context) -> SpanContext | None:
    """Return the valid span context of the span active in *ctx*, if any."""
    sc = trace.get_current_span(ctx).get_span_context()
    return sc if sc.is_valid else None


def get_tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    """Return the bus's tracer from *provider* (the global provider if ``None``)."""
    return trace.get_tracer(_TRACER_NAME, tracer_provider=provider)


@contextmanager
def delivery_span(
    tracer: trace.Tracer,
    parent: otel_context.Context,
    *,
    subscriber: str,
    topic: str,
    key: Hashable,
    attempt: int,
    coalesced: int,
    links: list[SpanContext],
) -> Iterator[Span]:
    """Run the block in the publisher's context *parent*, inside a new delivery span."""
    token = otel_context.attach(parent)
    try:
        span = tracer.start_span(
            f"bus.deliver {subscriber}",
            kind=SpanKind.CONSUMER,
            attributes={
                ATTR_SUBSCRIBER: subscriber,
                ATTR_TOPIC: topic,
                ATTR_KEY: str(key),
                ATTR_ATTEMPT: attempt,
                ATTR_COALESCED: coalesced,
            },
            links=[Link(sc) for sc in links],
        )
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            yield span
    finally:
        otel_context.detach(token)


def mark_failed(span: Span, exc: BaseException) -> None:
    """Mark *span* failed with the type of *exc* (not its message, which may carry data)."""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    span.set_attribute("error.type", name)
    span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
