"""The runner engineer's real-pod fixtures (``tests/runner/conftest.py``: ``pod_keycloak``,
``pod_images``, ``real_operator_kubeconfig``), loaded under a name of their own so the middleware
pod tests can use them without importing that conftest as ``conftest``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_RUNNER = Path(__file__).resolve().parents[1] / "runner"
if str(_RUNNER) not in sys.path:
    sys.path.insert(0, str(_RUNNER))
_spec = importlib.util.spec_from_file_location("runner_pod_fixtures", _RUNNER / "conftest.py")
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["runner_pod_fixtures"] = _module
_spec.loader.exec_module(_module)

pod_keycloak = _module.pod_keycloak
pod_images = _module.pod_images
real_operator_kubeconfig = _module.real_operator_kubeconfig

__all__ = ["pod_images", "pod_keycloak", "real_operator_kubeconfig"]
