"""The start/stop protocol shared by the local processes thv runs (control plane, Jaeger)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import anyio.to_thread


@dataclass(frozen=True)
class Wait:
    """One step of a bring-up: poll ``check`` until true, fail if ``proc`` exits or on timeout."""

    what: str
    check: Callable[[], bool]
    proc: str | None
    timeout: float


Steps = Generator[Wait, None, None]
"""A bring-up: a generator of waits, driven with ``time.sleep`` or ``anyio.sleep``."""


class ManagedProcesses:
    """``with`` / ``async with`` support around ``start``/``astart`` and ``stop``.

    Subclasses implement ``start`` and ``astart`` (the async variant must spawn from the event
    loop's thread: PR_SET_PDEATHSIG is per thread) and ``stop``; ``astop`` runs ``stop`` in a
    worker thread, shielded from cancellation so nothing is left running."""

    def start(self) -> Self:
        raise NotImplementedError

    async def astart(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def astop(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()


#: lock file held (flock) by the process that owns a data directory
OWNER_LOCK = ".owner.lock"


def reap_stale_dirs(parent: Path, prefix: str) -> list[Path]:
    """Remove ``parent/<prefix>*`` data directories whose owner process is gone; returns them."""
    removed = []
    for d in parent.glob(f"{prefix}*"):
        try:
            fd = os.open(d / OWNER_LOCK, os.O_RDWR)
        except OSError:
            continue  # not ours, or still being created
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # owner alive
        finally:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def new_owned_dir(parent: Path, prefix: str) -> tuple[Path, int]:
    """A fresh ``parent/<prefix>XXXX`` directory and the fd of its held owner lock.

    The lock is taken first and then published under the name reapers look for, so there is no
    window in which a reaper could take the lock of a directory that is being set up."""
    parent.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = os.open(d / f"{OWNER_LOCK}.new", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(d / f"{OWNER_LOCK}.new", d / OWNER_LOCK)
    return d, fd
