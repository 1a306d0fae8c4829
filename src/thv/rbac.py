"""RBAC declared in code: each part of the operator says what it needs.

:func:`thv.clusterrole.cluster_role` merges every declaration into the operator's ClusterRole (no
wildcards); the Helm chart and ``thv rbac`` print it, and the integration suite runs the
operator as a ServiceAccount bound only to it, so a missing line fails a test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Need:
    """Verbs on resources of one API group, and who needs them (for the generated comment)."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str = ""


_REGISTRY: dict[str, tuple[Need, ...]] = {}
#: declarations granted by a namespaced Role instead (the chart's leader-election Role)
NAMESPACED_OWNERS = frozenset({"leader-election"})


def declare(owner: str, *needs: Need) -> tuple[Need, ...]:
    """Record what ``owner`` (a subscriber, a source, the proxy-runner Role…) needs."""
    _REGISTRY[owner] = needs
    return needs


def declared() -> dict[str, tuple[Need, ...]]:
    """Everything declared so far, by owner."""
    return dict(_REGISTRY)


def merge(needs: Iterable[Need]) -> list[dict[str, Any]]:
    """Merge needs into sorted PolicyRules, one per (group, verb set)."""
    by_res: dict[tuple[str, str], set[str]] = {}
    for n in needs:
        for r in n.resources:
            by_res.setdefault((n.group, r), set()).update(n.verbs)
    by_verbs: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, res), verbs in sorted(by_res.items()):
        by_verbs.setdefault((group, tuple(sorted(verbs))), []).append(res)
    return [
        {"apiGroups": [group], "resources": sorted(res), "verbs": list(verbs)}
        for (group, verbs), res in sorted(by_verbs.items())
    ]
