"""Exceptions raised by the bus, and the ones a handler raises to steer its own retries.

::

    Exception
    ├── BusError                 raised by the bus
    │   └── BusClosedError       publish or subscribe on a bus (or subscription) that is closing
    ├── RetryAfter               raised by a handler: "try again in exactly this many seconds"
    └── TerminalError            raised by a handler: "retrying will not help; wait for a new event"

Any other exception a handler raises is a transient failure: it is logged and the key is
retried with exponential backoff (see :class:`~bus.RetryPolicy`).
"""

from __future__ import annotations

__all__ = ["BusClosedError", "BusError", "RetryAfter", "TerminalError"]


class BusError(Exception):
    """Base class of the exceptions the bus itself raises."""


class BusClosedError(BusError):
    """Raised by :meth:`~bus.Bus.publish` or :meth:`~bus.Bus.subscribe` once the bus (or the
    subscription) has started closing, including to publishers that were waiting for room."""


class RetryAfter(Exception):
    """Raised by a handler to be retried after exactly *delay* seconds instead of the backoff.

    It counts as a failed attempt (towards ``max_attempts``, and the failure count is kept), but
    is logged without a traceback. An event published for the key meanwhile is delivered at once.

    :param delay: seconds to wait before the next attempt (negative values mean zero)
    """

    def __init__(self, delay: float, message: str = "") -> None:
        super().__init__(message or f"retry after {delay:g}s")
        #: seconds to wait before the next attempt
        self.delay = max(0.0, float(delay))


class TerminalError(Exception):
    """Raised by a handler when retrying cannot help (an invalid spec, a missing referent).

    The failure is logged, the key's failure count is forgotten and the key is not retried: it
    is delivered again only when a new event is published for it.
    """
