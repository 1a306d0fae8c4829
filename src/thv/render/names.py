"""Object names, labels, annotation keys and fixed paths shared with upstream ToolHive.

Every string here must match the upstream Go operator byte for byte (reference §4, §15):
objects left behind by upstream carry them, and the upstream proxy runner image reads them.
Note the split domains: labels use ``toolhive.stacklok.io``, annotations ``toolhive.stacklok.dev``.
"""

from __future__ import annotations

import re
from typing import Final

# --- annotations (``.dev``) -----------------------------------------------------------------

#: on the RunConfig ConfigMap: SHA-256 over its data, labels and other annotations (§4.2)
ANNOTATION_CONTENT_CHECKSUM: Final = "toolhive.stacklok.dev/content-checksum"
#: on the proxy pod template: the RunConfig ConfigMap's content checksum (rolls the pods)
ANNOTATION_RUNCONFIG_CHECKSUM: Final = "toolhive.stacklok.dev/runconfig-checksum"
#: on MCPServers (written by the config hasher) and, in thv, on the proxy pod template
ANNOTATION_TOOLCONFIG_HASH: Final = "toolhive.stacklok.dev/toolconfig-hash"
ANNOTATION_EXTAUTH_HASH: Final = "toolhive.stacklok.dev/externalauthconfig-hash"
#: restart annotations on the MCPServer (and ``restarted-at`` on the pod template)
ANNOTATION_RESTARTED_AT: Final = "mcpserver.toolhive.stacklok.dev/restarted-at"
ANNOTATION_RESTART_STRATEGY: Final = "mcpserver.toolhive.stacklok.dev/restart-strategy"
ANNOTATION_LAST_PROCESSED_RESTART: Final = "mcpserver.toolhive.stacklok.dev/last-processed-restart"
#: Vault agent injection switch, looked for on the MCP and proxy pod templates
ANNOTATION_VAULT_AGENT_INJECT: Final = "vault.hashicorp.com/agent-inject"

# --- finalizers -----------------------------------------------------------------------------

FINALIZER_MCPSERVER: Final = "mcpserver.toolhive.stacklok.dev/finalizer"
FINALIZER_TOOLCONFIG: Final = "toolhive.stacklok.dev/toolconfig-finalizer"
FINALIZER_EXTAUTH: Final = "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer"

# --- labels (``.io``) -----------------------------------------------------------------------

LABEL_COMPONENT: Final = "toolhive.stacklok.io/component"
LABEL_MCP_SERVER: Final = "toolhive.stacklok.io/mcp-server"
LABEL_MANAGED_BY: Final = "toolhive.stacklok.io/managed-by"
LABEL_AUTHZ: Final = "toolhive.stacklok.io/authz"
LABEL_REGISTRY_NAME: Final = "toolhive.stacklok.io/registry-name"
#: upstream's on the proxy pods and the MCP server pods: ``true`` / the MCPServer's name
LABEL_TOOLHIVE: Final = "toolhive"
LABEL_TOOLHIVE_NAME: Final = "toolhive-name"

#: on every object thv renders (thv's own: upstream sets none): thv's watches select its
#: objects by it, so it wins over a user's override of the same key
LABEL_APP_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_THV: Final = "thv"

COMPONENT_RUN_CONFIG: Final = "run-config"
MANAGED_BY_OPERATOR: Final = "toolhive-operator"
AUTHZ_INLINE: Final = "inline"

# --- containers, env, paths -----------------------------------------------------------------

#: the proxy container; it must be ``containers[0]`` (chainsaw asserts on index 0)
PROXY_CONTAINER: Final = "toolhive"
#: the MCP server container inside the StatefulSet the proxy runner creates
MCP_CONTAINER: Final = "mcp"
PROXY_PORT_NAME: Final = "http"

ENV_TOKEN_EXCHANGE_CLIENT_SECRET: Final = "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"
ENV_OIDC_CLIENT_SECRET: Final = "TOOLHIVE_OIDC_CLIENT_SECRET"
ENV_OTEL_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
#: appended to the proxy env when absent, in this order (upstream ``EnsureRequiredEnvVars``)
REQUIRED_PROXY_ENV: Final[tuple[tuple[str, str], ...]] = (
    ("XDG_CONFIG_HOME", "/tmp"),
    ("HOME", "/tmp"),
    ("TOOLHIVE_RUNTIME", "kubernetes"),
    ("UNSTRUCTURED_LOGS", "false"),
)

RUNCONFIG_VOLUME: Final = "runconfig"
RUNCONFIG_MOUNT_PATH: Final = "/etc/runconfig"
RUNCONFIG_KEY: Final = "runconfig.json"
PERMISSION_PROFILE_VOLUME: Final = "permission-profile"
PERMISSION_PROFILE_MOUNT_PATH: Final = "/etc/toolhive/profiles"
AUTHZ_VOLUME: Final = "authz-config"
AUTHZ_MOUNT_PATH: Final = "/etc/toolhive/authz"
AUTHZ_KEY: Final = "authz.json"
AUTHZ_CONFIG_PATH: Final = f"{AUTHZ_MOUNT_PATH}/{AUTHZ_KEY}"
VAULT_SECRETS_DIR: Final = "/vault/secrets"

K8S_CA_BUNDLE_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
K8S_TOKEN_PATH: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
K8S_DEFAULT_ISSUER: Final = "https://kubernetes.default.svc"
K8S_DEFAULT_AUDIENCE: Final = "toolhive"

# --- object names ---------------------------------------------------------------------------


def deployment_name(server: str) -> str:
    """The proxy Deployment: ``<name>``."""
    return server


def service_name(server: str) -> str:
    """The proxy Service: ``mcp-<name>-proxy``."""
    return f"mcp-{server}-proxy"


def proxy_runner_name(server: str) -> str:
    """ServiceAccount, Role and RoleBinding of the proxy runner: ``<name>-proxy-runner``."""
    return f"{server}-proxy-runner"


def mcp_service_account_name(server: str) -> str:
    """The ServiceAccount thv creates for the MCP server pod when ``spec.serviceAccount`` is unset."""
    return f"{server}-sa"


def runconfig_configmap_name(server: str) -> str:
    """The RunConfig ConfigMap: ``<name>-runconfig``."""
    return f"{server}-runconfig"


def authz_inline_configmap_name(server: str) -> str:
    """The inline authorization ConfigMap: ``<name>-authz-inline``."""
    return f"{server}-authz-inline"


def statefulset_name(server: str) -> str:
    """The StatefulSet the proxy runner creates (no ownerRef; deleted by the finalizer)."""
    return server


def headless_service_name(server: str) -> str:
    """The headless Service the proxy runner creates for sse/streamable-http."""
    return f"mcp-{server}-headless"


#: longest MCPServer name whose StatefulSet can create pods: the proxy runner names the
#: StatefulSet ``<name>``, and the StatefulSet controller labels its pods with
#: ``controller-revision-hash=<name>-<10-character hash>``, a label value of at most 63 characters
MAX_STATEFULSET_NAME: Final = 52


def service_url(server: str, namespace: str, port: int) -> str:
    """``status.url``: ``http://mcp-<name>-proxy.<ns>.svc.cluster.local:<port>``."""
    return f"http://{service_name(server)}.{namespace}.svc.cluster.local:{port}"


# --- label sets -----------------------------------------------------------------------------


def labels_for_server(server: str) -> dict[str, str]:
    """Upstream ``labelsForMCPServer``: Deployment, pod template, selector and Service labels."""
    return {
        "app": "mcpserver",
        "app.kubernetes.io/name": "mcpserver",
        "app.kubernetes.io/instance": server,
        LABEL_TOOLHIVE: "true",
        LABEL_TOOLHIVE_NAME: server,
    }


def labels_for_runconfig(server: str) -> dict[str, str]:
    """Labels of the RunConfig ConfigMap (chainsaw selects it by ``mcp-server``)."""
    return {
        LABEL_COMPONENT: COMPONENT_RUN_CONFIG,
        LABEL_MCP_SERVER: server,
        LABEL_MANAGED_BY: MANAGED_BY_OPERATOR,
    }


def labels_for_inline_authz(server: str) -> dict[str, str]:
    """Labels of the inline authorization ConfigMap."""
    return {**labels_for_server(server), LABEL_AUTHZ: AUTHZ_INLINE}


# --- name validation (what the API server will accept) ----------------------------------------

_DNS1123_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_CONFIG_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")


def is_object_name(name: str) -> bool:
    """A name a Secret or ConfigMap can have: a lowercase RFC 1123 subdomain (at most 253 chars).

    Checked before a referenced name is used in an API path, so that ``..``, ``a/b`` or an empty
    name can never turn a GET of one object into a request for another resource."""
    return len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def is_config_key(key: str) -> bool:
    """A Secret or ConfigMap data key: ``[-._a-zA-Z0-9]+``, at most 253 chars, not ``.``/``..``."""
    return len(key) <= 253 and key not in (".", "..") and _CONFIG_KEY.fullmatch(key) is not None


def is_service_name(name: str) -> bool:
    """A Service name: an RFC 1035 label (lowercase letters, digits, ``-``; at most 63 chars)."""
    return len(name) <= 63 and _DNS1035_LABEL.fullmatch(name) is not None
