"""The upstream ToolHive RunConfig JSON (``runconfig.json``) and its middleware parameters.

Unlike the Kubernetes wire types these use the upstream Go JSON keys:

* snake_case keys (``rename=None``), in upstream struct order, so an encoded RunConfig lists
  its keys in the same order as the Go operator's (``pkg/runner/config.go``);
* Go ``omitempty`` fields are omitted when empty: scalars default to their zero value and
  lists/maps use ``default_factory=list/dict`` (msgspec omits those when empty);
* Go fields *without* ``omitempty`` are always encoded: either required, or declared with
  :func:`_always`, or the whole Struct has ``omit_defaults=False``;
* ``oidc_config`` uses Go field names (``Issuer``, ``JWKSURL`` …) because upstream's
  ``auth.TokenValidatorConfig`` has no JSON tags; ``telemetry_config`` uses camelCase.

Encode with ``msgspec.json.Encoder(order="deterministic")``: Struct fields keep upstream order
while map keys are sorted, as Go's ``encoding/json`` does (then indent with 2 spaces to match
``json.MarshalIndent``).
"""

from __future__ import annotations

from typing import Any

import msgspec

# middleware types, header strategies and token types: one vocabulary, in ``thv.api.contract``
from thv.api.contract import (
    HEADER_STRATEGY_CUSTOM,
    HEADER_STRATEGY_REPLACE,
    MW_AUDIT,
    MW_AUTH,
    MW_AUTHORIZATION,
    MW_MCP_PARSER,
    MW_TELEMETRY,
    MW_TOKEN_EXCHANGE,
    MW_TOOL_CALL_FILTER,
    MW_TOOL_FILTER,
    MW_USAGE_METRICS,
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN,
    TOKEN_TYPE_JWT,
)

__all__ = [
    "HEADER_STRATEGY_CUSTOM",
    "HEADER_STRATEGY_REPLACE",
    "MW_AUDIT",
    "MW_AUTH",
    "MW_AUTHORIZATION",
    "MW_MCP_PARSER",
    "MW_TELEMETRY",
    "MW_TOKEN_EXCHANGE",
    "MW_TOOL_CALL_FILTER",
    "MW_TOOL_FILTER",
    "MW_USAGE_METRICS",
    "SCHEMA_VERSION",
    "TOKEN_TYPE_ACCESS_TOKEN",
    "TOKEN_TYPE_ID_TOKEN",
    "TOKEN_TYPE_JWT",
    "AuditConfig",
    "AuditMiddlewareParams",
    "AuthMiddlewareParams",
    "AuthzConfig",
    "AuthzMiddlewareParams",
    "CedarConfig",
    "InboundNetworkPermissions",
    "MiddlewareConfig",
    "MiddlewareToolOverride",
    "NetworkPermissions",
    "OIDCConfig",
    "OutboundNetworkPermissions",
    "ParserMiddlewareParams",
    "PermissionProfile",
    "RunConfig",
    "TelemetryConfig",
    "TelemetryMiddlewareParams",
    "TokenExchangeConfig",
    "TokenExchangeMiddlewareParams",
    "ToolFilterMiddlewareParams",
    "ToolOverride",
    "UsageMetricsMiddlewareParams",
]

SCHEMA_VERSION = "v0.1.0"


def _always(default: Any) -> Any:
    """A field encoded even when equal to its default (a Go field without ``omitempty``).

    msgspec never omits a field whose ``default_factory`` is not a builtin collection type.
    """
    return msgspec.field(default_factory=lambda: default)


# --- permission profile ----------------------------------------------------------------------


class OutboundNetworkPermissions(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``permissions.OutboundNetworkPermissions``."""

    insecure_allow_all: bool = False
    allow_host: list[str] = msgspec.field(default_factory=list)
    allow_port: list[int] = msgspec.field(default_factory=list)


class InboundNetworkPermissions(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``permissions.InboundNetworkPermissions``."""

    allow_host: list[str] = msgspec.field(default_factory=list)


class NetworkPermissions(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``permissions.NetworkPermissions``."""

    mode: str = ""
    outbound: OutboundNetworkPermissions | None = None
    inbound: InboundNetworkPermissions | None = None


class PermissionProfile(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``permissions.Profile``."""

    name: str = ""
    read: list[str] = msgspec.field(default_factory=list)
    write: list[str] = msgspec.field(default_factory=list)
    network: NetworkPermissions | None = None
    privileged: bool = False

    @classmethod
    def builtin_network(cls) -> PermissionProfile:
        """Upstream's builtin ``network`` profile (outbound allowed, empty inbound)."""
        return cls(
            name="network",
            network=NetworkPermissions(
                outbound=OutboundNetworkPermissions(insecure_allow_all=True),
                inbound=InboundNetworkPermissions(),
            ),
        )

    @classmethod
    def builtin_none(cls) -> PermissionProfile:
        """Upstream's builtin ``none`` profile (no network)."""
        return cls(
            name="none",
            network=NetworkPermissions(
                outbound=OutboundNetworkPermissions(),
                inbound=InboundNetworkPermissions(),
            ),
        )


# --- auth ---------------------------------------------------------------------------------------


class OIDCConfig(msgspec.Struct, omit_defaults=False, kw_only=True):
    """``auth.TokenValidatorConfig``: Go field names as keys, every key always present."""

    issuer: str = msgspec.field(default="", name="Issuer")
    audience: str = msgspec.field(default="", name="Audience")
    jwks_url: str = msgspec.field(default="", name="JWKSURL")
    client_id: str = msgspec.field(default="", name="ClientID")
    client_secret: str = msgspec.field(default="", name="ClientSecret")
    ca_cert_path: str = msgspec.field(default="", name="CACertPath")
    auth_token_file: str = msgspec.field(default="", name="AuthTokenFile")
    allow_private_ip: bool = msgspec.field(default=False, name="AllowPrivateIP")
    insecure_allow_http: bool = msgspec.field(default=False, name="InsecureAllowHTTP")
    introspection_url: str = msgspec.field(default="", name="IntrospectionURL")
    resource_url: str = msgspec.field(default="", name="ResourceURL")


class TokenExchangeConfig(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``tokenexchange.Config``. ``client_id`` and ``client_secret`` are always present."""

    token_url: str
    client_id: str = _always("")
    client_secret: str = _always("")
    audience: str
    scopes: list[str] = msgspec.field(default_factory=list)
    subject_token_type: str = ""
    header_strategy: str = ""
    external_token_header_name: str = ""


class CedarConfig(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``authz.CedarConfig``."""

    policies: list[str] | None = _always(None)
    entities_json: str = _always("[]")


class AuthzConfig(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``authz.Config`` (``{"version": "v1", "type": "cedarv1", "cedar": {...}}``)."""

    version: str = _always("v1")
    type: str = _always("cedarv1")
    cedar: CedarConfig | None = None


class AuditConfig(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``audit.Config``. The operator's default is ``AuditConfig(max_data_size=1024)``."""

    component: str = ""
    event_types: list[str] = msgspec.field(default_factory=list)
    exclude_event_types: list[str] = msgspec.field(default_factory=list)
    include_request_data: bool = False
    include_response_data: bool = False
    max_data_size: int = 0
    log_file: str = ""


class TelemetryConfig(msgspec.Struct, rename="camel", omit_defaults=False, kw_only=True):
    """``telemetry.Config``: camelCase keys, all present (``customAttributes`` only when set)."""

    endpoint: str = ""
    service_name: str = ""
    service_version: str = ""
    tracing_enabled: bool = False
    metrics_enabled: bool = False
    sampling_rate: float = 0.05
    headers: dict[str, str] | None = None
    insecure: bool = False
    enable_prometheus_metrics_path: bool = False
    environment_variables: list[str] | None = None
    custom_attributes: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class ToolOverride(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``runner.ToolOverride`` (RunConfig ``tools_override`` values)."""

    name: str = ""
    description: str = ""


# --- middleware ---------------------------------------------------------------------------------


class MiddlewareConfig(msgspec.Struct, omit_defaults=False, kw_only=True):
    """``types.MiddlewareConfig``: ``parameters`` is any JSON object (a params Struct below)."""

    type: str
    parameters: Any = msgspec.field(default_factory=dict)


class AuthMiddlewareParams(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Parameters of the ``auth`` middleware."""

    oidc_config: OIDCConfig | None = None


class TokenExchangeMiddlewareParams(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Parameters of the ``tokenexchange`` middleware."""

    token_exchange_config: TokenExchangeConfig | None = None


class MiddlewareToolOverride(msgspec.Struct, omit_defaults=False, kw_only=True):
    """``mcp.ToolOverride`` (both keys always present)."""

    name: str = ""
    description: str = ""


class ToolFilterMiddlewareParams(msgspec.Struct, omit_defaults=False, kw_only=True):
    """Parameters of the ``tool-filter`` and ``tool-call-filter`` middlewares."""

    filter_tools: list[str] | None = None
    tools_override: dict[str, MiddlewareToolOverride] | None = None


class ParserMiddlewareParams(msgspec.Struct, kw_only=True):
    """Parameters of the ``mcp-parser`` middleware (none: ``{}``)."""


class UsageMetricsMiddlewareParams(msgspec.Struct, kw_only=True):
    """Parameters of the ``usagemetrics`` middleware (none: ``{}``)."""


class TelemetryMiddlewareParams(msgspec.Struct, omit_defaults=False, kw_only=True):
    """Parameters of the ``telemetry`` middleware."""

    config: TelemetryConfig | None = None
    server_name: str = ""
    transport: str = ""


class AuthzMiddlewareParams(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Parameters of the ``authorization`` middleware."""

    config_path: str = ""
    config_data: AuthzConfig | None = None


class AuditMiddlewareParams(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Parameters of the ``audit`` middleware."""

    config_path: str = ""
    config_data: AuditConfig | None = None
    component: str = ""
    transport_type: str = ""


# --- RunConfig ----------------------------------------------------------------------------------


class RunConfig(msgspec.Struct, omit_defaults=True, kw_only=True):
    """``runner.RunConfig`` as written to ``runconfig.json`` (keys in upstream order).

    Always present: ``schema_version``, ``image``, ``name``, ``transport``, ``host``, ``port``
    and ``permission_profile`` (``null`` when ``None``).
    """

    schema_version: str = _always(SCHEMA_VERSION)
    image: str
    remote_url: str = ""
    cmd_args: list[str] = msgspec.field(default_factory=list)
    name: str
    container_name: str = ""
    base_name: str = ""
    transport: str
    host: str
    port: int
    target_port: int = 0
    target_host: str = ""
    permission_profile_name_or_path: str = ""
    permission_profile: PermissionProfile | None = _always(None)
    env_vars: dict[str, str] = msgspec.field(default_factory=dict)
    env_file_dir: str = ""
    debug: bool = False
    volumes: list[str] = msgspec.field(default_factory=list)
    container_labels: dict[str, str] = msgspec.field(default_factory=dict)
    oidc_config: OIDCConfig | None = None
    token_exchange_config: TokenExchangeConfig | None = None
    authz_config: AuthzConfig | None = None
    authz_config_path: str = ""
    audit_config: AuditConfig | None = None
    audit_config_path: str = ""
    telemetry_config: TelemetryConfig | None = None
    secrets: list[str] = msgspec.field(default_factory=list)
    k8s_pod_template_patch: str = ""
    isolate_network: bool = False
    trust_proxy_headers: bool = False
    proxy_mode: str = ""
    thv_ca_bundle: str = ""
    jwks_auth_token_file: str = ""
    group: str = ""
    tools_filter: list[str] = msgspec.field(default_factory=list)
    tools_override: dict[str, ToolOverride] = msgspec.field(default_factory=dict)
    ignore_config: dict[str, Any] | None = None
    middleware_configs: list[MiddlewareConfig] = msgspec.field(default_factory=list)
