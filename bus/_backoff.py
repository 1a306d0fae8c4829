"""Capped exponential backoff with jitter for failed deliveries."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]

_random = random.Random()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a subscription retries a key whose handler raised.

    The delay before attempt ``n + 1`` (after ``n`` consecutive failures) is
    ``d = min(cap, base * factor ** (n - 1))``, drawn uniformly from ``[d * (1 - jitter), d]``
    ("equal jitter" at the default ``0.5``; ``jitter=1`` is "full jitter", ``0`` none). The
    delay never exceeds *cap*.

    :param base: delay after the first failure, in seconds (> 0)
    :param cap: largest delay, in seconds (>= base)
    :param factor: growth per failure (>= 1)
    :param jitter: fraction of the delay that is randomised, in ``[0, 1]``
    :param max_attempts: give up on a key after this many consecutive failed attempts
        (``None``: retry forever); a new event for the key starts again from attempt 1
    :raises ValueError: if a parameter is out of range
    """

    #: delay after the first failure, in seconds
    base: float = 0.05
    #: largest delay, in seconds
    cap: float = 300.0
    #: growth per failure
    factor: float = 2.0
    #: fraction of the delay that is randomised
    jitter: float = 0.5
    #: consecutive failed attempts before giving up (``None``: never)
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be > 0, not {self.base!r}")
        if not self.cap >= self.base:
            raise ValueError(f"cap must be >= base, not {self.cap!r}")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, not {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], not {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, not {self.max_attempts!r}")

    def ceiling(self, failures: int) -> float:
        """Return the un-jittered delay after *failures* consecutive failures (``>= 1``)."""
        try:
            return min(self.cap, self.base * self.factor ** max(0, failures - 1))
        except OverflowError:  # a float power overflows long after the cap was reached
            return self.cap

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Return a jittered delay after *failures* consecutive failures (``>= 1``).

        :param rng: source of randomness (a module-level :class:`random.Random` by default)
        """
        ceiling = self.ceiling(failures)
        if self.jitter == 0:
            return ceiling
        return (rng or _random).uniform(ceiling * (1 - self.jitter), ceiling)

    def gives_up(self, failures: int) -> bool:
        """Return whether *failures* consecutive failures exhaust ``max_attempts``."""
        return self.max_attempts is not None and failures >= self.max_attempts
