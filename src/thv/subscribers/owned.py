"""Where each kind thv owns lives, and how to find its live copy in the Store."""

from __future__ import annotations

from typing import Any

from thv.kube.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ROLEBINDINGS,
    ROLES,
    SERVICEACCOUNTS,
    SERVICES,
    Resource,
)
from thv.operator.context import Stores
from thv.sources.store import Store

RESOURCES: dict[str, Resource] = {
    "Deployment": DEPLOYMENTS,
    "Service": SERVICES,
    "ConfigMap": CONFIGMAPS,
    "ServiceAccount": SERVICEACCOUNTS,
    "Role": ROLES,
    "RoleBinding": ROLEBINDINGS,
}


def store_for(stores: Stores, kind: str) -> Store[Any]:
    stores_by_kind: dict[str, Store[Any]] = {
        "Deployment": stores.deployments,
        "Service": stores.services,
        "ConfigMap": stores.configmaps,
        "ServiceAccount": stores.serviceaccounts,
        "Role": stores.roles,
        "RoleBinding": stores.rolebindings,
    }
    return stores_by_kind[kind]


def live(stores: Stores, kind: str, namespace: str, name: str) -> Any | None:
    return store_for(stores, kind).get(f"{namespace}/{name}")
