"""Helm, built from its pinned Go module by ``tools/helm/build.sh`` (cached), for chart tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devcluster.gobuild import run_build_script
from devcluster.paths import find_tool_script


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
        script = find_tool_script("helm")
        if script is None:
            raise HelmBuildError("no tools/helm/build.sh (not in a checkout; set THV_CHECKOUT or THV_HELM)")
        path = run_build_script(script, HelmBuildError, quiet=quiet)
    if not os.access(path, os.X_OK):
        raise HelmBuildError(f"{path} is not an executable helm binary")
    return path


@dataclass(frozen=True)
class Helm:
    """A helm binary run with its config, cache and data (and ``HOME``) in a private directory,
    never the user's, and without ``HELM_*``/``KUBECONFIG`` from the environment."""

    binary: Path
    home: Path

    def run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_") and k != "KUBECONFIG"}
        env |= {
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        cmd = [str(self.binary), *args]
        if kubeconfig is not None:
            cmd += ["--kubeconfig", str(kubeconfig)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise HelmBuildError(
                f"helm {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        return proc
