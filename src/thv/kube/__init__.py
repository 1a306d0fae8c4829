"""The only place thv talks to the Kubernetes API (through kr8s)."""

from thv.kube.client import KubeClient, connect
from thv.kube.errors import ApiError, Conflict, Forbidden, Gone, Invalid, NotFound
from thv.kube.resources import Resource

__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeClient",
    "NotFound",
    "Resource",
    "connect",
]
