"""Property: whatever the interleaving of publishers, handler delays, failures and requeues,
every subscriber ends with a successful delivery of the newest event of every key, never
delivers a key twice at once, and never delivers an older event of a key after a newer one."""

from __future__ import annotations

import random
from collections import Counter

import anyio
import anyio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import Bus, Requeue, RetryPolicy

from .helpers import TIMEOUT, KeyEvent, Recorder

#: one publisher's plan: (key index within its own keys, checkpoints to yield before publishing)
PublisherPlan = list[tuple[int, int]]

plans = st.lists(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=15),
    min_size=1,
    max_size=3,
)
subscriber_shapes = st.lists(
    st.tuples(st.integers(1, 4), st.one_of(st.none(), st.integers(1, 3))), min_size=1, max_size=2
)


class Subscriber:
    """A handler with random delays, failures and requeues that checks the invariants."""

    def __init__(self, name: str, seed: int, progress: Recorder[None]) -> None:
        self.name = name
        self.rng = random.Random(seed)
        self.progress = progress
        self.active: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.delivered: dict[str, int] = {}
        self.regressions: list[tuple[str, int, int]] = []
        self.succeeded: dict[str, int] = {}

    async def __call__(self, event: KeyEvent) -> Requeue | None:
        key = event.key
        if self.active[key]:
            self.overlaps.append(key)
        if event.version < self.delivered.get(key, -1):
            self.regressions.append((key, self.delivered[key], event.version))
        self.delivered[key] = event.version
        self.active[key] += 1
        try:
            roll = self.rng.random()
            if roll < 0.2:
                await anyio.sleep(self.rng.random() / 1000)
            else:
                for _ in range(self.rng.randrange(4)):
                    await anyio.lowlevel.checkpoint()
            if self.rng.random() < 0.25:
                raise RuntimeError("random failure")
            self.succeeded[key] = event.version
            return Requeue(after=0.001) if self.rng.random() < 0.05 else None
        finally:
            self.active[key] -= 1
            self.progress.changed()


async def scenario(plan: list[PublisherPlan], shapes: list[tuple[int, int | None]], seed: int) -> None:
    progress: Recorder[None] = Recorder()
    newest: dict[str, int] = {}
    subscribers = [Subscriber(f"s{i}", seed + i, progress) for i in range(len(shapes))]

    async def publisher(bus: Bus, index: int, steps: PublisherPlan) -> None:
        for key_index, checkpoints in steps:
            for _ in range(checkpoints):
                await anyio.lowlevel.checkpoint()
            key = f"p{index}-k{key_index}"  # one publisher per key: "newest" is well defined
            newest[key] = newest.get(key, -1) + 1
            await bus.publish(KeyEvent(key=key, version=newest[key]))

    def settled() -> bool:
        return all(s.succeeded == newest for s in subscribers)

    policy = RetryPolicy(base=0.0005, cap=0.002)
    async with Bus(drain_timeout=TIMEOUT) as bus:
        for subscriber, (workers, maxsize) in zip(subscribers, shapes, strict=True):
            bus.subscribe(
                KeyEvent, subscriber, name=subscriber.name, workers=workers, maxsize=maxsize, retry=policy
            )
        async with anyio.create_task_group() as tg:
            for index, steps in enumerate(plan):
                tg.start_soon(publisher, bus, index, steps)
        await progress.wait_for(settled)
    for subscriber in subscribers:
        assert subscriber.overlaps == []
        assert subscriber.regressions == []
        assert subscriber.succeeded == newest


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans, shapes=subscriber_shapes, seed=st.integers(0, 2**32))
def test_every_key_ends_with_a_delivery_of_its_newest_event(
    plan: list[PublisherPlan], shapes: list[tuple[int, int | None]], seed: int
) -> None:
    anyio.run(scenario, plan, shapes, seed, backend="asyncio")
