"""RetryPolicy: capped exponential growth, jitter bounds, attempts."""

from __future__ import annotations

import random

import pytest

from bus import RetryPolicy


def test_ceiling_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, factor=2.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_ceiling_never_overflows() -> None:
    assert RetryPolicy(base=0.1, cap=5.0).ceiling(100_000) == 5.0


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5, 1.0])
def test_jittered_delay_stays_within_its_band_and_under_the_cap(jitter: float) -> None:
    policy = RetryPolicy(base=0.01, cap=0.3, jitter=jitter)
    rng = random.Random(7)
    for failures in range(1, 40):
        ceiling = policy.ceiling(failures)
        for _ in range(50):
            delay = policy.delay(failures, rng)
            assert ceiling * (1 - jitter) <= delay <= ceiling <= policy.cap


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(base=1.0, cap=1.0, jitter=0.5)
    rng = random.Random(1)
    assert len({policy.delay(1, rng) for _ in range(20)}) == 20


def test_max_attempts() -> None:
    assert not RetryPolicy().gives_up(10**6)
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0.0},
        {"base": 2.0, "cap": 1.0},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"max_attempts": 0},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
