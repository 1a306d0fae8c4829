"""API resource descriptors: where a kind lives on the API server."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource of the Kubernetes API (group, version, plural)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, else ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The absolute URL path of the collection (``name=None``), an object or its subresource.

        Names and namespaces are one percent-encoded path segment each, and the names that
        would address something else (``""``, ``.``, ``..``) raise :class:`ValueError`, so a
        reference taken from user input can never turn a GET into a LIST or climb the path."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{_segment(namespace, 'namespace')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{_segment(name, 'name')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _segment(value: str, what: str) -> str:
    if value in ("", ".", ".."):
        raise ValueError(f"invalid object {what} {value!r}")
    return quote(value, safe="")


DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
EVENTS = Resource("", "v1", "events", "Event")
PODS = Resource("", "v1", "pods", "Pod")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CLUSTERROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTERROLEBINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)

TOOLHIVE_GROUP = "toolhive.stacklok.dev"
MCPSERVERS = Resource(TOOLHIVE_GROUP, "v1alpha1", "mcpservers", "MCPServer")
MCPTOOLCONFIGS = Resource(TOOLHIVE_GROUP, "v1alpha1", "mcptoolconfigs", "MCPToolConfig")
MCPEXTERNALAUTHCONFIGS = Resource(
    TOOLHIVE_GROUP, "v1alpha1", "mcpexternalauthconfigs", "MCPExternalAuthConfig"
)
