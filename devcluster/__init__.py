"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok) built from pinned Go modules; for tests, demos and ``scripts/dev up``."""

from devcluster.audit import WRITE_VERBS, AuditEvent, AuditLog
from devcluster.controlplane import (
    ADMIN_USER,
    COMPONENT_USERS,
    NODE_NAME,
    ControlPlane,
    ControlPlaneError,
    build_binaries,
)
from devcluster.daemon import DevState, dev_down, dev_up, read_state

__all__ = [
    "ADMIN_USER",
    "COMPONENT_USERS",
    "NODE_NAME",
    "WRITE_VERBS",
    "AuditEvent",
    "AuditLog",
    "ControlPlane",
    "ControlPlaneError",
    "DevState",
    "build_binaries",
    "dev_down",
    "dev_up",
    "read_state",
]
