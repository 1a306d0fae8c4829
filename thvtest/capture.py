"""Progress lines through pytest's output capture: a cold build or a long start takes minutes,
and its progress should reach the terminal while the test waits."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def uncaptured(request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[object]:
    """A context in which output is not captured (a no-op when capture is off)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return contextlib.nullcontext()
    cm: contextlib.AbstractContextManager[object] = capture.global_and_fixture_disabled()
    return cm
