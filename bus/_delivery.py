"""The handler's side of a delivery: its signature, its result, and what it can ask about."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias, TypeVar

__all__ = ["Delivery", "Handler", "Requeue", "current_delivery"]

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Requeue:
    """Returned by a handler that succeeded but wants its key delivered again later.

    The key is delivered again after *after* seconds, with the newest event published for it
    by then; the key's failure count is reset (this is a success). An event published for the
    key meanwhile is delivered at once instead (and the timer is dropped).

    :param after: seconds before the re-delivery (``<= 0``: at the back of the queue now)
    """

    #: seconds before the re-delivery
    after: float


#: An event handler: an async callable taking the event, returning ``None`` or :class:`Requeue`.
Handler: TypeAlias = Callable[[E], Awaitable[Requeue | None]]


class Delivery(NamedTuple):
    """What is being delivered to the running handler (see :func:`current_delivery`)."""

    #: the subscription's name
    subscriber: str
    #: the topic subscribed to
    topic: type
    #: the key delivered
    key: Hashable
    #: 1, plus the key's consecutive failures so far
    attempt: int
    #: how many published events this delivery stands for
    coalesced: int


_current: ContextVar[Delivery] = ContextVar("bus_delivery")


def current_delivery() -> Delivery:
    """Return the delivery the calling handler is running for.

    :raises RuntimeError: if not called from (a task started by) a bus handler
    """
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_delivery() called outside a bus handler") from None
