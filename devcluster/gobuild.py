"""Run a ``tools/<tool>/build.sh`` script (Go programs built from pinned modules, cached).

Every build script prints the built path (a binary or a bin directory) as the last line on
stdout and its progress on stderr; this runs one and returns that path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from devcluster.paths import tool_script

__all__ = ["run_build_script", "tool_script"]


def run_build_script(
    script: Path, error: type[Exception], *, quiet: bool = False, args: Sequence[str] = ()
) -> Path:
    """Run ``script`` with ``args`` (progress to stderr unless ``quiet``) and return the path it
    printed last; raise ``error`` with a one-line message when it fails."""
    proc = subprocess.run(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        name = script.parent.name
        raise error(f"{name} build failed (exit {proc.returncode}); run {script} to see why")
    return Path(lines[-1])
