"""Helm, built from its pinned Go module by ``tools/helm/build.sh`` (cached), for chart tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tools" / "helm" / "build.sh"


class HelmBuildError(RuntimeError):
    """Helm could not be built or found."""


def helm_binary(*, quiet: bool = False) -> Path:
    """Build (or reuse from the cache) Helm and return the path of the ``helm`` binary.

    ``$THV_HELM`` (a path to a helm binary) takes precedence; otherwise
    ``tools/helm/build.sh`` runs (progress on stderr unless ``quiet``; a cold build takes a
    few minutes, a cached one returns at once).
    """
    env_path = os.environ.get("THV_HELM")
    if env_path:
        path = Path(env_path)
    else:
        if not BUILD_SCRIPT.exists():
            raise HelmBuildError(f"no {BUILD_SCRIPT} (not a source checkout); set THV_HELM")
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,
            text=True,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise HelmBuildError(f"helm build failed (exit {proc.returncode}); run {BUILD_SCRIPT} to see why")
        path = Path(lines[-1])
    if not os.access(path, os.X_OK):
        raise HelmBuildError(f"{path} is not an executable helm binary")
    return path
