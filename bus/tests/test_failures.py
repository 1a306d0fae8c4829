"""Failures: isolation, capped exponential backoff with jitter, RetryAfter, terminal errors,
timeouts, and a newer event for a key in backoff."""

from __future__ import annotations

import itertools
import logging

import anyio
import pytest

from bus import Bus, DeliveryReport, Outcome, RetryAfter, RetryPolicy, TerminalError, current_delivery

from .helpers import TIMEOUT, KeyEvent, Recorder

FAST = RetryPolicy(base=0.001, cap=0.002)


@pytest.mark.anyio
async def test_a_failing_handler_is_retried_and_harms_no_other_key_or_subscriber(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: Recorder[tuple[str, int]] = Recorder()
    healthy: Recorder[str] = Recorder()

    async def flaky(event: KeyEvent) -> None:
        attempt = current_delivery().attempt
        attempts.add((event.key, attempt))
        if event.key == "bad" and attempt < 4:
            raise RuntimeError("boom")

    async def other(event: KeyEvent) -> None:
        healthy.add(event.key)

    with caplog.at_level(logging.WARNING, logger="bus"):
        async with Bus() as bus:
            sub = bus.subscribe(KeyEvent, flaky, name="flaky", retry=FAST)
            bus.subscribe(KeyEvent, other, name="other")
            for key in ("bad", "good1", "good2"):
                await bus.publish(KeyEvent(key=key))
            await attempts.wait_for(lambda: ("bad", 4) in attempts.items)
            await attempts.wait_for(lambda: {"good1", "good2"} <= {k for k, _ in attempts.items})
            await healthy.wait_len(3)
            stats = sub.stats()
    assert [a for k, a in attempts.items if k == "bad"] == [1, 2, 3, 4]
    assert (stats.deliveries, stats.failures, stats.dropped) == (6, 3, 0)
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)


@pytest.mark.anyio
async def test_backoff_grows_exponentially_with_jitter_under_the_cap_then_gives_up() -> None:
    policy = RetryPolicy(base=0.005, cap=0.02, factor=2.0, jitter=0.5, max_attempts=6)
    reports: Recorder[DeliveryReport] = Recorder()
    started: list[float] = []

    async def always_fails(event: KeyEvent) -> None:
        started.append(anyio.current_time())
        raise ValueError("nope")

    async with Bus(on_delivery=reports.add) as bus:
        sub = bus.subscribe(KeyEvent, always_fails, name="h", retry=policy)
        await bus.publish(KeyEvent(key="a"))
        await reports.wait_len(6)
        assert [r.outcome for r in reports.items] == [Outcome.RETRY] * 5 + [Outcome.GAVE_UP]
        assert [r.attempt for r in reports.items] == [1, 2, 3, 4, 5, 6]
        for report in reports.items[:5]:
            ceiling = policy.ceiling(report.attempt)
            assert report.retry_in is not None
            assert ceiling / 2 <= report.retry_in <= ceiling <= policy.cap
        assert reports.items[-1].retry_in is None
        # a retry never comes early
        for (before, after), report in zip(itertools.pairwise(started), reports.items[:5], strict=True):
            assert report.retry_in is not None
            assert after - before >= report.retry_in - 1e-9
        stats = sub.stats()
        assert (stats.failures, stats.dropped, stats.delayed) == (6, 1, 0)
        # after giving up, a new event starts again from attempt 1
        await bus.publish(KeyEvent(key="a", version=1))
        await reports.wait_len(7)
        assert reports.items[6].attempt == 1


@pytest.mark.anyio
async def test_retry_after_sets_the_delay_and_counts_as_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    reports: Recorder[DeliveryReport] = Recorder()

    async def handler(event: KeyEvent) -> None:
        if current_delivery().attempt == 1:
            raise RetryAfter(0.02, "rate limited")

    with caplog.at_level(logging.INFO, logger="bus"):
        async with Bus(on_delivery=reports.add) as bus:
            bus.subscribe(KeyEvent, handler, name="h", retry=RetryPolicy(base=60, cap=60))
            await bus.publish(KeyEvent(key="a"))
            await reports.wait_len(2)
    first, second = reports.items
    assert (first.outcome, first.retry_in) == (Outcome.RETRY, 0.02)
    assert (second.outcome, second.attempt) == (Outcome.SUCCESS, 2)
    (record,) = [r for r in caplog.records if "asked to be retried" in r.getMessage()]
    assert record.exc_info is None


@pytest.mark.anyio
async def test_a_terminal_error_is_not_retried_until_a_new_event(caplog: pytest.LogCaptureFixture) -> None:
    reports: Recorder[DeliveryReport] = Recorder()

    async def handler(event: KeyEvent) -> None:
        if event.version == 0:
            raise TerminalError("spec is invalid")

    async with Bus(on_delivery=reports.add) as bus:
        sub = bus.subscribe(KeyEvent, handler, name="h", retry=FAST)
        await bus.publish(KeyEvent(key="a"))
        await reports.wait_len(1)
        await anyio.sleep(0.05)  # room for a (wrong) retry to show up
        assert len(reports.items) == 1
        assert sub.stats().delayed == 0
        await bus.publish(KeyEvent(key="a", version=1))
        await reports.wait_len(2)
    assert [(r.outcome, r.attempt) for r in reports.items] == [(Outcome.TERMINAL, 1), (Outcome.SUCCESS, 1)]
    assert any("terminal error" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_a_handler_over_its_timeout_fails_and_is_retried() -> None:
    reports: Recorder[DeliveryReport] = Recorder()

    async def handler(event: KeyEvent) -> None:
        if current_delivery().attempt == 1:
            await anyio.sleep_forever()

    async with Bus(on_delivery=reports.add) as bus:
        bus.subscribe(KeyEvent, handler, name="h", retry=FAST, timeout=0.01)
        await bus.publish(KeyEvent(key="a"))
        await reports.wait_len(2)
    assert [r.outcome for r in reports.items] == [Outcome.RETRY, Outcome.SUCCESS]


@pytest.mark.anyio
async def test_a_new_event_for_a_key_in_backoff_is_delivered_at_once_keeping_the_failure_count() -> None:
    reports: Recorder[DeliveryReport] = Recorder()
    seen: list[tuple[int, int]] = []

    async def handler(event: KeyEvent) -> None:
        attempt = current_delivery().attempt
        seen.append((event.version, attempt))
        if event.version < 2:
            raise RuntimeError("not yet")

    slow = RetryPolicy(base=3600, cap=3600)  # the test times out long before a retry is due
    async with Bus(on_delivery=reports.add) as bus:
        sub = bus.subscribe(KeyEvent, handler, name="h", retry=slow)
        await bus.publish(KeyEvent(key="a", version=0))
        await reports.wait_len(1)
        assert sub.stats().delayed == 1
        await bus.publish(KeyEvent(key="a", version=1))
        await reports.wait_len(2)
        await bus.publish(KeyEvent(key="a", version=2))
        await reports.wait_len(3)
        assert sub.stats().delayed == 0
        await bus.publish(KeyEvent(key="a", version=3))
        await reports.wait_len(4)
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 1)]


@pytest.mark.anyio
async def test_an_event_arriving_during_a_failing_delivery_is_delivered_right_after() -> None:
    started = anyio.Event()
    release = anyio.Event()
    seen: Recorder[tuple[int, int]] = Recorder()

    async def handler(event: KeyEvent) -> None:
        seen.add((event.version, current_delivery().attempt))
        if event.version == 0:
            started.set()
            await release.wait()
            raise RuntimeError("stale")

    async with Bus() as bus:
        bus.subscribe(KeyEvent, handler, name="h", retry=RetryPolicy(base=3600, cap=3600))
        await bus.publish(KeyEvent(key="a", version=0))
        await started.wait()
        await bus.publish(KeyEvent(key="a", version=1))
        release.set()
        await seen.wait_len(2)
    assert seen.items == [(0, 1), (1, 2)]


@pytest.mark.anyio
async def test_a_failing_on_delivery_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    seen: Recorder[str] = Recorder()

    def hook(report: DeliveryReport) -> None:
        raise RuntimeError("exporter down")

    async def handler(event: KeyEvent) -> None:
        seen.add(event.key)

    async with Bus(on_delivery=hook) as bus:
        bus.subscribe(KeyEvent, handler)
        await bus.publish(KeyEvent(key="a"))
        await bus.publish(KeyEvent(key="b"))
        await seen.wait_len(2)
        with anyio.fail_after(TIMEOUT):
            await anyio.wait_all_tasks_blocked()
    assert sum("on_delivery hook failed" in r.getMessage() for r in caplog.records) == 2
