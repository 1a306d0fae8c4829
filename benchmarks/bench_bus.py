"""Benchmark the in-process event bus (bounded in count and time; prints progress to stderr).

For 1, 10 and 100 subscribers to one topic (one worker each, default queue size 1024):

1. **flood**: one publisher publishes as fast as ``publish`` lets it (it yields once per
   event; keys cycle over 5,000, so little coalescing) while trivial handlers consume; reports
   published events/s, deliveries/s, how many events coalesced, and publish→handler-start
   latency p50/p99;
2. **paced**: publish one event, wait until every subscriber has handled it, repeat; reports
   the publish→handler-start latency p50/p99 of an otherwise idle bus.

Two extra flood runs at 10 subscribers: one with the OpenTelemetry SDK (spans recorded and
dropped) to show the cost of tracing (the others use the API's no-op tracer), and one where
subscriber 0 is slow (1 ms per event, maxsize 64): the publisher is held back to its pace, and
the latency shown is the nine fast subscribers' (backpressure isolation).

Usage: ``.venv/bin/python benchmarks/bench_bus.py [--quick] [--out benchmarks/results/bus.txt]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import anyio
import msgspec
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from bus import Bus

REPO = Path(__file__).resolve().parents[1]
KEYS = 5_000
TIME_BUDGET = 8.0  # seconds per flood run at most (the publisher stops early)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class KeyEvent(msgspec.Struct, frozen=True, gc=False):
    kind: str
    key: str
    sent: float  # perf_counter() at publish


class DropSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Row(NamedTuple):
    mode: str
    subscribers: int
    tracing: str
    published: int
    deliveries: int
    coalesced: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def events_per_s(self) -> float:
        return self.published / self.seconds

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds


def percentile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def flood(subscribers: int, events: int, provider: TracerProvider | None, slow: bool = False) -> Row:
    latencies: list[float] = []
    delivered = 0

    async def handler(event: KeyEvent) -> None:
        nonlocal delivered
        latencies.append(time.perf_counter() - event.sent)
        delivered += 1

    async def slow_handler(event: KeyEvent) -> None:
        nonlocal delivered
        await anyio.sleep(0.001)
        delivered += 1

    async with Bus(tracer_provider=provider) as bus:
        for i in range(subscribers):
            if slow and i == 0:
                bus.subscribe(KeyEvent, slow_handler, name="slow", maxsize=64)
            else:
                bus.subscribe(KeyEvent, handler, name=f"s{i}")
        start = time.perf_counter()
        deadline = start + TIME_BUDGET
        published = 0
        report_every = max(1, events // 4)
        for i in range(events):
            await bus.publish(KeyEvent(kind="Thing", key=f"ns/obj-{i % KEYS}", sent=time.perf_counter()))
            published += 1
            if published % report_every == 0:
                say(f"  flood x{subscribers}: {published}/{events} published")
            if time.perf_counter() > deadline:
                say(f"  flood x{subscribers}: time budget reached after {published} events")
                break
        # wait for every subscriber to deliver what it accepted (minus what coalesced)
        with anyio.fail_after(60):
            while True:
                stats = bus.stats().values()
                expected = sum(s.published - s.coalesced for s in stats)
                if delivered >= expected and all(s.processing == 0 and s.queued == 0 for s in stats):
                    break
                await anyio.sleep(0.005)
        seconds = time.perf_counter() - start
        coalesced = sum(s.coalesced for s in bus.stats().values())
    return Row(
        "1 slow" if slow else "flood",
        subscribers,
        "sdk" if provider else "no-op",
        published,
        delivered,
        coalesced,
        seconds,
        1000 * percentile(latencies, 50),
        1000 * percentile(latencies, 99),
    )


async def paced(subscribers: int, rounds: int) -> Row:
    latencies: list[float] = []
    remaining = 0
    done = anyio.Event()

    async def handler(event: KeyEvent) -> None:
        nonlocal remaining
        latencies.append(time.perf_counter() - event.sent)
        remaining -= 1
        if remaining == 0:
            done.set()

    async with Bus() as bus:
        for i in range(subscribers):
            bus.subscribe(KeyEvent, handler, name=f"s{i}")
        start = time.perf_counter()
        for i in range(rounds):
            remaining = subscribers
            done = anyio.Event()
            await bus.publish(KeyEvent(kind="Thing", key=f"ns/obj-{i % KEYS}", sent=time.perf_counter()))
            with anyio.fail_after(30):
                await done.wait()
        seconds = time.perf_counter() - start
    return Row(
        "paced",
        subscribers,
        "no-op",
        rounds,
        len(latencies),
        0,
        seconds,
        1000 * percentile(latencies, 50),
        1000 * percentile(latencies, 99),
    )


def table(rows: list[Row]) -> str:
    header = (
        f"{'mode':<10} {'subs':>4} {'tracing':<7} {'events':>7} {'deliveries':>10} {'coalesced':>9} "
        f"{'events/s':>9} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    lines = [header, "-" * len(header)]
    lines += [
        f"{r.mode:<10} {r.subscribers:>4} {r.tracing:<7} {r.published:>7} {r.deliveries:>10} "
        f"{r.coalesced:>9} {r.events_per_s:>9,.0f} {r.deliveries_per_s:>9,.0f} "
        f"{r.p50_ms:>8.3f} {r.p99_ms:>8.3f}"
        for r in rows
    ]
    return "\n".join(lines)


async def main(quick: bool) -> str:
    scale = 0.2 if quick else 1.0
    # (subscribers, flood events, paced rounds): about 100k deliveries per flood run
    plan = [(1, 50_000, 1_000), (10, 10_000, 500), (100, 1_000, 200)]
    rows: list[Row] = []
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DropSpans()))
    for subscribers, events, rounds in plan:
        n = max(100, int(events * scale))
        say(f"flood: {subscribers} subscriber(s), {n} events")
        rows.append(await flood(subscribers, n, None))
        say(f"  -> {rows[-1].events_per_s:,.0f} events/s, {rows[-1].deliveries_per_s:,.0f} deliveries/s")
        n = max(50, int(rounds * scale))
        say(f"paced: {subscribers} subscriber(s), {n} round trips")
        rows.append(await paced(subscribers, n))
        say(f"  -> p50 {rows[-1].p50_ms:.3f} ms, p99 {rows[-1].p99_ms:.3f} ms")
    n = max(100, int(10_000 * scale))
    say(f"flood with the OpenTelemetry SDK: 10 subscribers, {n} events")
    rows.append(await flood(10, n, provider))
    say(f"  -> {rows[-1].events_per_s:,.0f} events/s, {rows[-1].deliveries_per_s:,.0f} deliveries/s")
    provider.shutdown()
    n = max(100, int(2_000 * scale))
    say(f"flood with one slow subscriber (1 ms/event) among 10, {n} events")
    rows.append(await flood(10, n, None, slow=True))
    say(f"  -> {rows[-1].events_per_s:,.0f} events/s; fast subscribers p99 {rows[-1].p99_ms:.3f} ms")

    text = "\n".join(
        [
            "bus benchmark (benchmarks/bench_bus.py" + (" --quick)" if quick else ")"),
            f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"python {platform.python_version()} ({platform.python_implementation()}), asyncio backend, "
            f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
            "one worker and maxsize 1024 per subscriber; trivial handlers; latency = publish call -> handler start",
            "",
            table(rows),
            "",
        ]
    )
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fifth of the events (a smoke run)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bus.txt")
    args = parser.parse_args()
    started = time.perf_counter()
    result = anyio.run(main, args.quick, backend="asyncio")
    print(result)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result)
    say(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    say(f"done in {time.perf_counter() - started:.1f}s")
