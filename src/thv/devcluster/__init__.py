"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok) built from pinned Go modules; for tests, demos and ``thv dev up``."""

from thv.devcluster.audit import AuditEvent, AuditLog
from thv.devcluster.controlplane import ControlPlane, ControlPlaneError, build_binaries

__all__ = ["AuditEvent", "AuditLog", "ControlPlane", "ControlPlaneError", "build_binaries"]
