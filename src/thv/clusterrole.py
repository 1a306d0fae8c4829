"""The operator's ClusterRole, merged from what every watched kind and every subscriber declares
(:mod:`thv.rbac`); the chart's rules and ``thv rbac`` are generated from it. It imports the
tables of kinds and subscribers, nothing of the operator's wiring."""

from __future__ import annotations

from typing import Any

import thv.sources.kinds
import thv.subscribers.gather
import thv.subscribers.registry  # noqa: F401  (registers every subscriber's needs)
from thv.rbac import NAMESPACED_OWNERS, declared, merge


def cluster_role(name: str = "thv-operator-manager-role") -> dict[str, Any]:
    """The ClusterRole from every cluster-wide declaration."""
    rules = merge(n for owner, needs in declared().items() if owner not in NAMESPACED_OWNERS for n in needs)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }
