"""Events and helpers shared by the bus tests (no timed assertions: wait for conditions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import msgspec

T = TypeVar("T")

#: generous: the suite runs on a loaded 2-core machine
TIMEOUT = 10.0


class KeyEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event keyed by its ``key`` field, with a version to tell events apart."""

    kind: str = "Thing"
    key: str
    version: int = 0


class SubEvent(KeyEvent, frozen=True, kw_only=True):
    """A subclass of :class:`KeyEvent` (delivered to subscribers of the base class)."""


class OtherEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event with no ``key`` field."""

    name: str
    secret: str = ""


class Recorder(Generic[T]):
    """Records items and lets a test wait until a condition on them holds."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = anyio.Event()

    def add(self, item: T) -> None:
        self.items.append(item)
        self.changed()

    def changed(self) -> None:
        """Wake the waiters (call after changing state they watch)."""
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until *predicate()* is true (checked after every change)."""
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_len(self, n: int, timeout: float = TIMEOUT) -> None:
        """Wait until at least *n* items were recorded."""
        await self.wait_for(lambda: len(self.items) >= n, timeout)
