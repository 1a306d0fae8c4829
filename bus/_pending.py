"""What a subscription holds for a key until delivery, and how coalescing merges it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import SpanContext

from ._tracing import MAX_LINKS, span_context

__all__ = ["Pending", "Published", "merge"]

E = TypeVar("E")


class Published(NamedTuple, Generic[E]):
    """One published event, shared by every subscription it is routed to."""

    #: the event
    event: E
    #: the publisher's OpenTelemetry context
    context: Context
    #: the publisher's span context, if a span was active (for links)
    origin: SpanContext | None
    #: :func:`anyio.current_time` at publish
    at: float

    @classmethod
    def capture(cls, event: E, context: Context, at: float) -> Published[E]:
        """Record *event* published in *context* at *at*."""
        return cls(event, context, span_context(context), at)


@dataclass(eq=False, slots=True)
class Pending(Generic[E]):
    """The undelivered events of one key for one subscription, coalesced."""

    #: the newest event and its publisher (delivered, and the delivery span's parent)
    latest: Published[E]
    #: when the key became ready (admission, or when a retry falls due)
    ready_at: float
    #: how many published events this stands for
    coalesced: int = 1
    #: span contexts linked from the delivery: older publishers, earlier attempts
    links: list[SpanContext] | None = None

    @classmethod
    def of(cls, published: Published[E]) -> Pending[E]:
        """Return the pending state of a key that received only *published*."""
        return cls(published, published.at)

    def link(self, sc: SpanContext | None) -> None:
        """Add a link to *sc* (ignored if invalid, duplicate, or over :data:`MAX_LINKS`)."""
        if sc is None or not sc.is_valid or sc == self.latest.origin:
            return
        if self.links is None:
            self.links = [sc]
        elif len(self.links) < MAX_LINKS and sc not in self.links:
            self.links.append(sc)


def merge(old: Pending[E], new: Pending[E]) -> Pending[E]:
    """Coalesce *new* (one more published event) into *old*; the newest event wins."""
    previous = old.latest
    old.latest = new.latest
    old.coalesced += new.coalesced
    # a key waiting for a retry becomes ready now: min() keeps the earliest readiness
    old.ready_at = min(old.ready_at, new.ready_at)
    old.link(previous.origin)
    if new.links:
        for sc in new.links:
            old.link(sc)
    return old
