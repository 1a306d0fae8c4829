"""The three ToolHive custom resources (``toolhive.stacklok.dev/v1alpha1``) as msgspec Structs.

CRD-compatible with the upstream Go operator (``cmd/thv-operator/api/v1alpha1``): every
field users can write upstream is declared here, so nothing is pruned by thv's CRDs.
Python attribute names are snake_case; the wire (and the CRD) is camelCase.

Conventions:

* optional scalars are ``T | None = None``; optional lists/maps are ``list[T] | None = None``;
* a Python default other than ``None`` exists only where upstream declares a
  ``+kubebuilder:default`` (it becomes the CRD schema default);
* enumerations are plain ``str`` validated by the CRD (``enum`` in the schema), so that
  a value written under a newer upstream CRD never makes decoding fail. The allowed values
  are available as module constants;
* the CRD schemas are generated from these classes by :mod:`thv.crdgen`; CEL rules and list
  markers are attached with ``extra_json_schema``.

Deliberate differences from upstream (all backwards compatible):

* ``spec.proxyPort`` has no schema default (upstream's later default of 8080 made the
  deprecated ``spec.port`` unusable); use :meth:`MCPServerSpec.effective_proxy_port`.
* MCPExternalAuthConfig ``status`` has no ``referencingServers`` (seed), but has ``conditions``.
* MCPServer ``status`` also carries ``observedGeneration``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from thv.api.meta import Condition, Int32, Int64, ListMeta, ObjectMeta, ResourceInfo, describe

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCES",
    "VERSION",
    "AuditConfig",
    "AuthzConfigRef",
    "ConfigMapAuthzRef",
    "ConfigMapOIDCRef",
    "EnvVar",
    "ExternalAuthConfigRef",
    "InlineAuthzConfig",
    "InlineOIDCConfig",
    "KubernetesOIDCConfig",
    "MCPExternalAuthConfig",
    "MCPExternalAuthConfigList",
    "MCPExternalAuthConfigSpec",
    "MCPExternalAuthConfigStatus",
    "MCPServer",
    "MCPServerList",
    "MCPServerSpec",
    "MCPServerStatus",
    "MCPToolConfig",
    "MCPToolConfigList",
    "MCPToolConfigSpec",
    "MCPToolConfigStatus",
    "NetworkPermissions",
    "OIDCConfigRef",
    "OpenTelemetryConfig",
    "OpenTelemetryMetricsConfig",
    "OpenTelemetryTracingConfig",
    "OutboundNetworkPermissions",
    "PermissionProfileRef",
    "PermissionProfileSpec",
    "PrometheusConfig",
    "ProxyDeploymentOverrides",
    "ResourceList",
    "ResourceMetadataOverrides",
    "ResourceOverrides",
    "ResourceRequirements",
    "SecretKeyRef",
    "SecretRef",
    "TelemetryConfig",
    "TokenExchangeConfig",
    "ToolConfigRef",
    "ToolOverride",
    "Volume",
]

GROUP = "toolhive.stacklok.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# --- enumerations -------------------------------------------------------------------------

TRANSPORT_STDIO = "stdio"
TRANSPORT_STREAMABLE_HTTP = "streamable-http"
TRANSPORT_SSE = "sse"
TRANSPORTS = (TRANSPORT_STDIO, TRANSPORT_STREAMABLE_HTTP, TRANSPORT_SSE)
PROXY_MODES = (TRANSPORT_SSE, TRANSPORT_STREAMABLE_HTTP)

PERMISSION_PROFILE_BUILTIN = "builtin"
PERMISSION_PROFILE_CONFIGMAP = "configmap"

OIDC_KUBERNETES = "kubernetes"
OIDC_CONFIGMAP = "configMap"
OIDC_INLINE = "inline"

AUTHZ_CONFIGMAP = "configMap"
AUTHZ_INLINE = "inline"

PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_FAILED = "Failed"
PHASE_TERMINATING = "Terminating"
PHASES = (PHASE_PENDING, PHASE_RUNNING, PHASE_FAILED, PHASE_TERMINATING)

EXTERNAL_AUTH_TOKEN_EXCHANGE = "tokenExchange"

SUBJECT_TOKEN_TYPE_PATTERN = (
    r"^(access_token|id_token|jwt|urn:ietf:params:oauth:token-type:(access_token|id_token|jwt))?$"
)

#: condition type set on MCPServer (upstream)
CONDITION_IMAGE_VALIDATED = "ImageValidated"


def _enum(*values: str, description: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, extra_json_schema={"enum": list(values), **extra})


def _cel(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


_ATOMIC_LIST: dict[str, Any] = {"x-kubernetes-list-type": "atomic"}
_ATOMIC_MAP: dict[str, Any] = {"x-kubernetes-map-type": "atomic"}

Port = Annotated[int, msgspec.Meta(ge=1, le=65535, extra_json_schema={"format": "int32"})]
StringList = Annotated[list[str], msgspec.Meta(extra_json_schema=_ATOMIC_LIST)]
StringMap = dict[str, str]


# --- shared refs --------------------------------------------------------------------------


class SecretKeyRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A key within a Secret in the referencing object's namespace."""

    name: Annotated[str, describe("Name of the Secret.")]
    key: Annotated[str, describe("Key within the Secret.")]


class ToolConfigRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Reference to an MCPToolConfig in the same namespace as the MCPServer."""

    name: Annotated[str, describe("Name of the MCPToolConfig in the same namespace.")]


class ExternalAuthConfigRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Reference to an MCPExternalAuthConfig in the same namespace as the MCPServer."""

    name: Annotated[str, describe("Name of the MCPExternalAuthConfig in the same namespace.")]


# --- MCPServer spec ------------------------------------------------------------------------


class EnvVar(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """An environment variable (name and literal value)."""

    name: Annotated[str, describe("Name of the environment variable.")]
    value: Annotated[str, describe("Value of the environment variable.")]


class Volume(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A hostPath volume mounted into the proxy (and passed to the MCP server container)."""

    name: Annotated[str, describe("Name of the volume.")]
    host_path: Annotated[str, describe("Path on the host to mount.")]
    mount_path: Annotated[str, describe("Path in the container to mount to.")]
    read_only: Annotated[bool, describe("Mount read-only.")] = False


class ResourceList(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """CPU and memory quantities."""

    cpu: Annotated[str | None, describe('CPU quantity, e.g. "500m".')] = None
    memory: Annotated[str | None, describe('Memory quantity, e.g. "64Mi".')] = None


class ResourceRequirements(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Compute resources of the proxy container."""

    limits: Annotated[ResourceList | None, describe("Maximum resources allowed.")] = None
    requests: Annotated[ResourceList | None, describe("Minimum resources required.")] = None


class SecretRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A Secret key exposed as an environment variable of the MCP server container."""

    name: Annotated[str, describe("Name of the Secret.")]
    key: Annotated[str, describe("Key within the Secret.")]
    target_env_name: Annotated[
        str | None, describe("Environment variable name in the MCP server container; defaults to the key.")
    ] = None


class PermissionProfileRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Which permission profile the MCP server runs with."""

    type: Annotated[
        str,
        _enum(
            PERMISSION_PROFILE_BUILTIN, PERMISSION_PROFILE_CONFIGMAP, description="Kind of profile reference."
        ),
    ] = PERMISSION_PROFILE_BUILTIN
    name: Annotated[
        str, describe('Builtin profile name ("none" or "network"), or the name of the ConfigMap.')
    ]
    key: Annotated[str | None, describe("Key in the ConfigMap holding the profile (configmap type).")] = None


class OutboundNetworkPermissions(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Outbound network permissions."""

    insecure_allow_all: Annotated[bool, describe("Allow all outbound connections.")] = False
    allow_host: Annotated[StringList | None, describe("Hosts to allow connections to.")] = None
    allow_port: Annotated[
        Annotated[list[Int32], msgspec.Meta(extra_json_schema=_ATOMIC_LIST)] | None,
        describe("Ports to allow connections to."),
    ] = None


class NetworkPermissions(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Network permissions of the MCP server."""

    mode: Annotated[str | None, describe("Container network mode (e.g. host, bridge, none).")] = None
    outbound: Annotated[OutboundNetworkPermissions | None, describe("Outbound permissions.")] = None


class PermissionProfileSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Permissions of an MCP server (upstream type, not referenced by the MCPServer spec)."""

    read: Annotated[StringList | None, describe("Paths the MCP server can read.")] = None
    write: Annotated[StringList | None, describe("Paths the MCP server can write.")] = None
    network: Annotated[NetworkPermissions | None, describe("Network permissions.")] = None


class ResourceMetadataOverrides(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Annotations and labels to add to, or override on, a created resource."""

    annotations: Annotated[StringMap | None, describe("Annotations to add or override.")] = None
    labels: Annotated[StringMap | None, describe("Labels to add or override.")] = None


class ProxyDeploymentOverrides(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Overrides for the proxy Deployment."""

    annotations: Annotated[StringMap | None, describe("Annotations to add or override.")] = None
    labels: Annotated[StringMap | None, describe("Labels to add or override.")] = None
    pod_template_metadata_overrides: Annotated[
        ResourceMetadataOverrides | None, describe("Metadata overrides for the proxy pod template.")
    ] = None
    env: Annotated[
        Annotated[list[EnvVar], msgspec.Meta(extra_json_schema=_ATOMIC_LIST)] | None,
        describe("Environment variables of the proxy container (not of the MCP server)."),
    ] = None


class ResourceOverrides(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Metadata overrides for the resources the operator creates."""

    proxy_deployment: Annotated[
        ProxyDeploymentOverrides | None, describe("Overrides for the proxy Deployment.")
    ] = None
    proxy_service: Annotated[
        ResourceMetadataOverrides | None, describe("Overrides for the proxy Service.")
    ] = None


class KubernetesOIDCConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Validate Kubernetes service account tokens."""

    service_account: Annotated[
        str | None, describe("Service account to validate tokens for; defaults to the pod's.")
    ] = None
    namespace: Annotated[
        str | None, describe("Namespace of the service account; defaults to the MCPServer's.")
    ] = None
    audience: Annotated[str, describe("Expected token audience.")] = "toolhive"
    issuer: Annotated[str, describe("OIDC issuer URL.")] = "https://kubernetes.default.svc"
    jwks_url: Annotated[str | None, describe("JWKS URL; discovered when empty.")] = None
    introspection_url: Annotated[str | None, describe("Token introspection URL; discovered when empty.")] = (
        None
    )
    use_cluster_auth: Annotated[
        bool | None, describe("Use the cluster CA bundle and service account token (default true).")
    ] = None


class ConfigMapOIDCRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A ConfigMap holding OIDC configuration."""

    name: Annotated[str, describe("Name of the ConfigMap.")]
    key: Annotated[str, describe("Key in the ConfigMap.")] = "oidc.json"


class InlineOIDCConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """OIDC configuration given inline."""

    issuer: Annotated[str, describe("OIDC issuer URL.")]
    audience: Annotated[str | None, describe("Expected token audience.")] = None
    jwks_url: Annotated[str | None, describe("JWKS URL.")] = None
    introspection_url: Annotated[str | None, describe("Token introspection URL.")] = None
    client_id: Annotated[str | None, describe("OIDC client ID.")] = None
    client_secret: Annotated[
        str | None, describe("Client secret for introspection (deprecated: use clientSecretRef).")
    ] = None
    client_secret_ref: Annotated[
        SecretKeyRef | None,
        msgspec.Meta(
            description="Secret holding the client secret; wins over clientSecret.",
            extra_json_schema=_ATOMIC_MAP,
        ),
    ] = None
    thv_ca_bundle_path: Annotated[str | None, describe("Path of a CA bundle file mounted into the pod.")] = (
        msgspec.field(default=None, name="thvCABundlePath")
    )
    jwks_auth_token_path: Annotated[
        str | None, describe("Path of a file holding a bearer token for JWKS/OIDC requests.")
    ] = None
    jwks_allow_private_ip: Annotated[bool, describe("Allow JWKS/OIDC endpoints on private IP addresses.")] = (
        msgspec.field(default=False, name="jwksAllowPrivateIP")
    )
    insecure_allow_http: Annotated[
        bool | None, describe("Allow plain-HTTP OIDC issuers (development only).")
    ] = msgspec.field(default=None, name="insecureAllowHTTP")


class OIDCConfigRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Incoming-request authentication (OIDC token validation)."""

    type: Annotated[
        str,
        _enum(
            OIDC_KUBERNETES,
            OIDC_CONFIGMAP,
            OIDC_INLINE,
            description="Where the OIDC configuration comes from.",
        ),
    ] = OIDC_KUBERNETES
    resource_url: Annotated[
        str | None, describe("Resource URL for OAuth protected-resource discovery (RFC 9728).")
    ] = None
    kubernetes: Annotated[KubernetesOIDCConfig | None, describe('Used when type is "kubernetes".')] = None
    config_map: Annotated[ConfigMapOIDCRef | None, describe('Used when type is "configMap".')] = None
    inline: Annotated[InlineOIDCConfig | None, describe('Used when type is "inline".')] = None


class ConfigMapAuthzRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A ConfigMap holding a Cedar authorization configuration."""

    name: Annotated[str, describe("Name of the ConfigMap.")]
    key: Annotated[str, describe("Key in the ConfigMap.")] = "authz.json"


class InlineAuthzConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Cedar policies given inline."""

    policies: Annotated[
        list[str],
        msgspec.Meta(min_length=1, description="Cedar policies.", extra_json_schema=_ATOMIC_LIST),
    ]
    entities_json: Annotated[str, describe("Cedar entities as a JSON string.")] = "[]"


class AuthzConfigRef(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Authorization policy configuration."""

    type: Annotated[
        str,
        _enum(AUTHZ_CONFIGMAP, AUTHZ_INLINE, description="Where the authorization configuration comes from."),
    ] = AUTHZ_CONFIGMAP
    config_map: Annotated[ConfigMapAuthzRef | None, describe('Used when type is "configMap".')] = None
    inline: Annotated[InlineAuthzConfig | None, describe('Used when type is "inline".')] = None


class AuditConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Audit logging."""

    enabled: Annotated[bool, describe("Enable audit logging with the default configuration.")] = False


class OpenTelemetryMetricsConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """OTLP metrics."""

    enabled: Annotated[bool, describe("Send OTLP metrics.")] = False


class OpenTelemetryTracingConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """OTLP tracing."""

    enabled: Annotated[bool, describe("Send OTLP traces.")] = False
    sampling_rate: Annotated[str, describe("Trace sampling rate between 0.0 and 1.0, as a string.")] = "0.05"


class OpenTelemetryConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """OpenTelemetry export."""

    enabled: Annotated[bool, describe("Enable OpenTelemetry.")] = False
    endpoint: Annotated[str | None, describe("OTLP endpoint URL.")] = None
    service_name: Annotated[str | None, describe("Service name; defaults to the MCPServer name.")] = None
    headers: Annotated[StringList | None, describe('OTLP headers as "key=value" strings.')] = None
    insecure: Annotated[bool, describe("Use HTTP instead of HTTPS for the OTLP endpoint.")] = False
    metrics: Annotated[OpenTelemetryMetricsConfig | None, describe("Metrics export.")] = None
    tracing: Annotated[OpenTelemetryTracingConfig | None, describe("Tracing export.")] = None


class PrometheusConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Prometheus metrics endpoint."""

    enabled: Annotated[bool, describe("Expose the Prometheus metrics endpoint.")] = False


class TelemetryConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Observability of the MCP server proxy."""

    open_telemetry: Annotated[OpenTelemetryConfig | None, describe("OpenTelemetry export.")] = None
    prometheus: Annotated[PrometheusConfig | None, describe("Prometheus metrics endpoint.")] = None


_OIDC_RULES: dict[str, Any] = {
    "x-kubernetes-validations": [
        _cel(
            "self.type != 'configMap' || has(self.configMap)", "configMap is required when type is configMap"
        ),
        _cel("self.type != 'inline' || has(self.inline)", "inline is required when type is inline"),
    ]
}
_AUTHZ_RULES: dict[str, Any] = {
    "x-kubernetes-validations": [
        _cel(
            "self.type != 'configMap' || has(self.configMap)", "configMap is required when type is configMap"
        ),
        _cel("self.type != 'inline' || has(self.inline)", "inline is required when type is inline"),
    ]
}
_TOOL_OVERRIDE_RULES: dict[str, Any] = {
    "x-kubernetes-validations": [
        _cel(
            "has(self.name) || has(self.description)",
            "at least one of name or description must be set",
        )
    ]
}
_EXTAUTH_SPEC_RULES: dict[str, Any] = {
    "x-kubernetes-validations": [
        _cel(
            "self.type != 'tokenExchange' || has(self.tokenExchange)",
            "tokenExchange is required when type is tokenExchange",
        )
    ]
}


class MCPServerSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Desired state of an MCPServer."""

    image: Annotated[str, describe("Container image of the MCP server.")]
    transport: Annotated[
        str, _enum(*TRANSPORTS, description="Transport of the MCP server (stdio, streamable-http or sse).")
    ] = TRANSPORT_STDIO
    proxy_mode: Annotated[
        str,
        _enum(
            *PROXY_MODES,
            description='Proxy mode for the stdio transport; only used when transport is "stdio".',
        ),
    ] = TRANSPORT_SSE
    port: Annotated[Port, describe("Deprecated: use proxyPort. Port the proxy is exposed on.")] = 8080
    target_port: Annotated[
        Port | None, describe("Deprecated: use mcpPort. Port the MCP server listens on.")
    ] = None
    proxy_port: Annotated[
        Port | None, describe("Port the proxy is exposed on; wins over the deprecated port.")
    ] = None
    mcp_port: Annotated[
        Port | None, describe("Port the MCP server listens on; wins over the deprecated targetPort.")
    ] = None
    args: Annotated[StringList | None, describe("Additional arguments for the MCP server.")] = None
    env: Annotated[
        Annotated[list[EnvVar], msgspec.Meta(extra_json_schema=_ATOMIC_LIST)] | None,
        describe("Environment variables of the MCP server container."),
    ] = None
    volumes: Annotated[
        Annotated[list[Volume], msgspec.Meta(extra_json_schema=_ATOMIC_LIST)] | None,
        describe("hostPath volumes to mount."),
    ] = None
    resources: Annotated[
        ResourceRequirements | None, describe("Compute resources of the proxy container.")
    ] = None
    secrets: Annotated[
        Annotated[list[SecretRef], msgspec.Meta(extra_json_schema=_ATOMIC_LIST)] | None,
        describe("Secret keys exposed as environment variables of the MCP server container."),
    ] = None
    service_account: Annotated[
        str | None,
        describe("Existing ServiceAccount for the MCP server pod; created (<name>-sa) when unset."),
    ] = None
    permission_profile: Annotated[
        PermissionProfileRef | None, describe("Permission profile of the MCP server.")
    ] = None
    pod_template_spec: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(
            description=(
                "PodTemplateSpec patch for the MCP server pod; the container named `mcp` is the MCP "
                "server container."
            ),
            extra_json_schema={"x-kubernetes-preserve-unknown-fields": True},
        ),
    ] = None
    resource_overrides: Annotated[
        ResourceOverrides | None, describe("Metadata overrides for the resources the operator creates.")
    ] = None
    oidc_config: Annotated[
        OIDCConfigRef | None,
        msgspec.Meta(description="Incoming-request authentication.", extra_json_schema=_OIDC_RULES),
    ] = None
    authz_config: Annotated[
        AuthzConfigRef | None,
        msgspec.Meta(description="Authorization policy configuration.", extra_json_schema=_AUTHZ_RULES),
    ] = None
    audit: Annotated[AuditConfig | None, describe("Audit logging.")] = None
    tools: Annotated[
        StringList | None, describe("Deprecated: use toolConfigRef. Allow-list of tool names.")
    ] = None
    tool_config_ref: Annotated[
        ToolConfigRef | None,
        msgspec.Meta(
            description="MCPToolConfig (same namespace) for tool filtering and renaming; wins over tools.",
            extra_json_schema=_ATOMIC_MAP,
        ),
    ] = None
    external_auth_config_ref: Annotated[
        ExternalAuthConfigRef | None,
        msgspec.Meta(
            description="MCPExternalAuthConfig (same namespace) for outgoing authentication.",
            extra_json_schema=_ATOMIC_MAP,
        ),
    ] = None
    telemetry: Annotated[TelemetryConfig | None, describe("Observability configuration.")] = None
    trust_proxy_headers: Annotated[bool, describe("Trust X-Forwarded-* headers from reverse proxies.")] = (
        False
    )
    group_ref: Annotated[
        str | None, describe("Name of the MCPGroup this server belongs to (accepted; not acted on by thv).")
    ] = None

    def effective_proxy_port(self) -> int:
        """``proxyPort``, else the deprecated ``port``, else 8080 (upstream ``GetProxyPort``)."""
        return self.proxy_port or self.port or 8080

    def effective_mcp_port(self) -> int | None:
        """``mcpPort``, else the deprecated ``targetPort``, else ``None`` (not set)."""
        return self.mcp_port or self.target_port or None


class MCPServerStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Observed state of an MCPServer."""

    conditions: Annotated[
        Annotated[
            list[Condition],
            msgspec.Meta(
                extra_json_schema={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
            ),
        ]
        | None,
        describe("Latest observations of the MCPServer's state."),
    ] = None
    tool_config_hash: Annotated[str | None, describe("configHash of the referenced MCPToolConfig.")] = None
    external_auth_config_hash: Annotated[
        str | None, describe("configHash of the referenced MCPExternalAuthConfig.")
    ] = None
    url: Annotated[str | None, describe("URL where the MCP server can be reached.")] = None
    phase: Annotated[str | None, _enum(*PHASES, description="Current phase.")] = None
    message: Annotated[str | None, describe("Details about the current phase.")] = None
    observed_generation: Annotated[
        Int64 | None, describe("Most recent metadata.generation observed by the operator.")
    ] = None


class MCPServer(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """An MCP server run behind the ToolHive proxy."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(GROUP, VERSION, "MCPServer", "mcpservers", "mcpserver")

    api_version: str = msgspec.field(default_factory=lambda: API_VERSION)
    kind: str = msgspec.field(default_factory=lambda: "MCPServer")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: MCPServerSpec
    status: MCPServerStatus | None = None


class MCPServerList(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A list of MCPServers."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[MCPServer] | None = None


# --- MCPToolConfig --------------------------------------------------------------------------


class ToolOverride(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A new name and/or description for a tool."""

    name: Annotated[str | None, describe("New name of the tool.")] = None
    description: Annotated[str | None, describe("New description of the tool.")] = None


class MCPToolConfigSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Tool filtering and overrides, referenced by MCPServers in the same namespace."""

    tools_filter: Annotated[
        StringList | None, describe("Allow-list of tool names; empty means all tools.")
    ] = None
    tools_override: Annotated[
        dict[str, Annotated[ToolOverride, msgspec.Meta(extra_json_schema=_TOOL_OVERRIDE_RULES)]] | None,
        describe("Overrides keyed by the real tool name (rename and/or redescribe)."),
    ] = None


class MCPToolConfigStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Observed state of an MCPToolConfig."""

    observed_generation: Annotated[Int64 | None, describe("Most recent generation observed.")] = None
    config_hash: Annotated[str | None, describe("Hash of the spec, for change detection.")] = None
    referencing_servers: Annotated[
        StringList | None, describe("Names of the MCPServers referencing this MCPToolConfig.")
    ] = None


class MCPToolConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Tool filtering and renaming for MCPServers in the same namespace."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        GROUP, VERSION, "MCPToolConfig", "mcptoolconfigs", "mcptoolconfig", short_names=("tc", "toolconfig")
    )

    api_version: str = msgspec.field(default_factory=lambda: API_VERSION)
    kind: str = msgspec.field(default_factory=lambda: "MCPToolConfig")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: MCPToolConfigSpec = msgspec.field(default_factory=MCPToolConfigSpec)
    status: MCPToolConfigStatus | None = None


class MCPToolConfigList(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A list of MCPToolConfigs."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[MCPToolConfig] | None = None


# --- MCPExternalAuthConfig -----------------------------------------------------------------

#: RFC 6749 section 3.3: ``scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`` (a CEL string literal:
#: the regex receives ``\x21`` etc.)
SCOPE_TOKEN_RULE = r"self.matches('^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$')"
SCOPE_TOKEN_MESSAGE = (
    "each scope must be one RFC 6749 scope-token: printable ASCII without spaces, double quotes, "
    'backslashes or control characters (write "read write" as two entries: [read, write])'
)
MAX_SCOPES = 64
MAX_SCOPE_LENGTH = 256
ScopeToken = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "maxLength": MAX_SCOPE_LENGTH,
            "x-kubernetes-validations": [_cel(SCOPE_TOKEN_RULE, SCOPE_TOKEN_MESSAGE)],
        }
    ),
]


class TokenExchangeConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """RFC 8693 OAuth 2.0 Token Exchange."""

    token_url: Annotated[
        str,
        msgspec.Meta(
            description="OAuth 2.0 token endpoint URL used for the exchange (http or https).",
            extra_json_schema={"minLength": 1, "maxLength": 2048, "pattern": r"^https?://\S+$"},
        ),
    ]
    client_id: Annotated[str | None, describe("OAuth 2.0 client identifier (optional for some flows).")] = (
        None
    )
    client_secret_ref: Annotated[
        SecretKeyRef | None,
        msgspec.Meta(
            description="Secret key holding the OAuth 2.0 client secret (optional for some flows).",
            extra_json_schema=_ATOMIC_MAP,
        ),
    ] = None
    audience: Annotated[
        str,
        msgspec.Meta(
            description="Target audience of the exchanged token.",
            extra_json_schema={"minLength": 1, "maxLength": 1024},
        ),
    ]
    scopes: Annotated[
        list[ScopeToken] | None,
        msgspec.Meta(
            description=(
                "OAuth 2.0 scopes to request, one scope per entry (RFC 6749 section 3.3 scope-tokens: "
                "printable ASCII without spaces, double quotes or backslashes)."
            ),
            extra_json_schema={**_ATOMIC_LIST, "maxItems": MAX_SCOPES},
        ),
    ] = None
    subject_token_type: Annotated[
        Annotated[str, msgspec.Meta(pattern=SUBJECT_TOKEN_TYPE_PATTERN)] | None,
        describe(
            'Type of the incoming subject token: "access_token" (default), "id_token", "jwt" or the '
            "full urn:ietf:params:oauth:token-type URN."
        ),
    ] = None
    external_token_header_name: Annotated[
        Annotated[
            str,
            msgspec.Meta(extra_json_schema={"pattern": r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", "maxLength": 256}),
        ]
        | None,
        describe(
            "Custom header that receives the exchanged token; when unset the exchanged token "
            "replaces the Authorization header."
        ),
    ] = None


class MCPExternalAuthConfigSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Outgoing authentication, referenced by MCPServers in the same namespace."""

    type: Annotated[str, _enum(EXTERNAL_AUTH_TOKEN_EXCHANGE, description="Kind of external authentication.")]
    token_exchange: Annotated[
        TokenExchangeConfig | None, describe('Token exchange settings; used when type is "tokenExchange".')
    ] = None


class MCPExternalAuthConfigStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Observed state of an MCPExternalAuthConfig."""

    observed_generation: Annotated[Int64 | None, describe("Most recent generation observed.")] = None
    config_hash: Annotated[str | None, describe("Hash of the spec, for change detection.")] = None
    conditions: Annotated[
        Annotated[
            list[Condition],
            msgspec.Meta(
                extra_json_schema={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
            ),
        ]
        | None,
        describe("Latest observations of the config's state."),
    ] = None


class MCPExternalAuthConfig(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """External (outgoing) authentication for MCPServers in the same namespace."""

    RESOURCE: ClassVar[ResourceInfo] = ResourceInfo(
        GROUP,
        VERSION,
        "MCPExternalAuthConfig",
        "mcpexternalauthconfigs",
        "mcpexternalauthconfig",
        short_names=("extauth", "mcpextauth"),
    )

    api_version: str = msgspec.field(default_factory=lambda: API_VERSION)
    kind: str = msgspec.field(default_factory=lambda: "MCPExternalAuthConfig")
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: Annotated[MCPExternalAuthConfigSpec, msgspec.Meta(extra_json_schema=_EXTAUTH_SPEC_RULES)]
    status: MCPExternalAuthConfigStatus | None = None


class MCPExternalAuthConfigList(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """A list of MCPExternalAuthConfigs."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[MCPExternalAuthConfig] | None = None


#: the three kinds, in CRD generation order
RESOURCES: tuple[type[MCPServer] | type[MCPToolConfig] | type[MCPExternalAuthConfig], ...] = (
    MCPServer,
    MCPToolConfig,
    MCPExternalAuthConfig,
)
