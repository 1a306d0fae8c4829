"""MCPServer (+ references, settings) → upstream ``runconfig.json`` and its ConfigMap.

Follows upstream ``createRunConfigFromMCPServer`` + ``NewOperatorRunConfigBuilder`` +
``validateRunConfig`` (reference §3 step 9, §7) with the token-exchange fix of ``45716962c``:
the top-level ``token_exchange_config`` and the full ``middleware_configs`` chain
(auth, tokenexchange, tool-filter, tool-call-filter, mcp-parser, telemetry, authorization,
audit — each only when it applies; ``auth`` and ``mcp-parser`` always apply, as upstream).
Upstream's ``usagemetrics`` entry is never emitted (it depends on the operator process's
own usage-metrics setting, not on the MCPServer).

The JSON is byte-compatible with Go's ``json.MarshalIndent(cfg, "", "  ")``: Struct keys in
upstream order, map keys sorted, ``& < >`` escaped, no trailing newline.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import msgspec
import yaml

from thv.api import contract
from thv.api import runconfig as rc
from thv.api.crds import (
    AUTHZ_CONFIGMAP,
    AUTHZ_INLINE,
    EXTERNAL_AUTH_TOKEN_EXCHANGE,
    OIDC_CONFIGMAP,
    OIDC_INLINE,
    OIDC_KUBERNETES,
    PERMISSION_PROFILE_BUILTIN,
    PERMISSION_PROFILE_CONFIGMAP,
    TRANSPORT_SSE,
    TRANSPORT_STDIO,
    TRANSPORT_STREAMABLE_HTTP,
    TRANSPORTS,
    MCPExternalAuthConfig,
    MCPServer,
    MCPToolConfig,
)
from thv.api.k8s import ConfigMap
from thv.render import names
from thv.render.authz import CedarError, parse_cedar
from thv.render.common import go_json_indent, object_meta, server_name, server_namespace
from thv.render.errors import (
    REASON_INVALID_AUTHZ,
    REASON_INVALID_ENV,
    REASON_INVALID_EXTERNAL_AUTH,
    REASON_INVALID_NAME,
    REASON_INVALID_OIDC,
    REASON_INVALID_PERMISSION_PROFILE,
    REASON_INVALID_SPEC,
    REASON_INVALID_TOOLS,
    REASON_INVALID_TRANSPORT,
    REASON_INVALID_VOLUME,
    REASON_MISSING_INPUT,
    REASON_MISSING_TARGET_PORT,
    RenderError,
)
from thv.render.refs import References
from thv.render.settings import OperatorSettings

__all__ = [
    "SUBJECT_TOKEN_TYPES",
    "authz_config",
    "build_run_config",
    "content_checksum",
    "middleware_configs",
    "normalize_subject_token_type",
    "oidc_settings",
    "permission_profile",
    "resource_url_default",
    "runconfig_configmap",
    "runconfig_json",
    "telemetry_config",
    "token_exchange_config",
    "tools_filter_and_override",
    "validate_run_config",
    "vault_injected",
]

#: short subject token types accepted by the CRD, and their URNs (the one vocabulary)
SUBJECT_TOKEN_TYPES: Final[Mapping[str, str]] = contract.SUBJECT_TOKEN_TYPES
_HTTP_TRANSPORTS: Final = (TRANSPORT_SSE, TRANSPORT_STREAMABLE_HTTP)
_GO_FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
DEFAULT_TELEMETRY_SERVICE_NAME: Final = "toolhive-mcp-proxy"
DEFAULT_SAMPLING_RATE: Final = 0.05
DEFAULT_AUDIT_MAX_DATA_SIZE: Final = 1024


# --- external auth (token exchange) -------------------------------------------------------------


def normalize_subject_token_type(value: str | None) -> str:
    """Upstream ``NormalizeTokenType`` (:func:`thv.api.contract.normalize_subject_token_type`):
    ``""`` stays ``""``; short forms become the full URN."""
    try:
        return contract.normalize_subject_token_type(value)
    except contract.ContractError as exc:
        raise RenderError(REASON_INVALID_EXTERNAL_AUTH, str(exc)) from None


def _check_token_url(url: str) -> None:
    """``tokenUrl`` must be an absolute http(s) URL with a host that any HTTP client can parse.

    The CRD only asks for ``^https?://\\S+$`` (upstream asks nothing), so ``https://[::1/``,
    ``https://h:99999/`` or control characters get through admission; refusing them here puts
    the reason on the MCPServer instead of a proxy that fails every exchange."""
    problem = ""
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c.isspace() for c in url):
        problem = "it contains whitespace or control characters"
    else:
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port  # raises ValueError for a bad or out-of-range port
        except ValueError as exc:
            problem = str(exc)
        else:
            if parts.scheme.lower() not in ("http", "https"):
                problem = "the scheme must be http or https"
            elif not parts.hostname:
                problem = "it has no host"
    if problem:
        shown = url if len(url) <= 256 else url[:256] + "…"
        raise RenderError(
            REASON_INVALID_EXTERNAL_AUTH, f"token exchange tokenUrl {shown!r} is not a valid URL: {problem}"
        )


def token_exchange_config(ext: MCPExternalAuthConfig) -> rc.TokenExchangeConfig:
    """``tokenexchange.Config`` for a referenced MCPExternalAuthConfig, never with a secret.

    The client secret reaches the proxy only through ``TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET``
    (a ``secretKeyRef`` env var); ``client_secret`` is always ``""`` here.
    """
    spec = ext.spec
    if spec.type != EXTERNAL_AUTH_TOKEN_EXCHANGE:
        raise RenderError(REASON_INVALID_EXTERNAL_AUTH, f"unsupported external auth type: {spec.type}")
    te = spec.token_exchange
    if te is None:
        raise RenderError(
            REASON_INVALID_EXTERNAL_AUTH, "token exchange configuration is nil for type tokenExchange"
        )
    if not te.token_url:
        raise RenderError(REASON_INVALID_EXTERNAL_AUTH, "token exchange tokenUrl is empty")
    _check_token_url(te.token_url)
    for field, value in (
        ("clientId", te.client_id),
        ("audience", te.audience),
        *(("scopes", scope) for scope in te.scopes or ()),
    ):
        if value and "\x00" in value:
            # a NUL can never reach the proxy as a flag (argv is NUL-terminated); refuse it in
            # both modes so that flag mode and ConfigMap mode keep meaning the same thing
            raise RenderError(
                REASON_INVALID_EXTERNAL_AUTH, f"token exchange {field} contains a NUL character"
            )
    header = te.external_token_header_name or ""
    if header and not contract.is_header_name(header):
        raise RenderError(
            REASON_INVALID_EXTERNAL_AUTH,
            f"externalTokenHeaderName {header!r} is not a valid HTTP header name",
        )
    return rc.TokenExchangeConfig(
        token_url=te.token_url,
        client_id=te.client_id or "",
        audience=te.audience,
        scopes=list(te.scopes or []),
        subject_token_type=normalize_subject_token_type(te.subject_token_type),
        header_strategy=rc.HEADER_STRATEGY_CUSTOM if header else rc.HEADER_STRATEGY_REPLACE,
        external_token_header_name=header,
    )


# --- tools --------------------------------------------------------------------------------------


def tools_filter_and_override(
    server: MCPServer, tool_config: MCPToolConfig | None
) -> tuple[list[str], dict[str, rc.ToolOverride]]:
    """``toolConfigRef`` wins over the deprecated ``spec.tools`` (even with an empty filter)."""
    if tool_config is None:
        return list(server.spec.tools or []), {}
    overrides: dict[str, rc.ToolOverride] = {}
    for tool, override in sorted((tool_config.spec.tools_override or {}).items()):
        if not override.name and not override.description:
            raise RenderError(
                REASON_INVALID_TOOLS, f"tool override for {tool} must have either Name or Description set"
            )
        overrides[tool] = rc.ToolOverride(name=override.name or "", description=override.description or "")
    return list(tool_config.spec.tools_filter or []), overrides


# --- OIDC ---------------------------------------------------------------------------------------


def resource_url_default(server: MCPServer) -> str:
    """ConfigMap mode's default RFC 9728 resource URL: ``http://<name>.<ns>.svc.cluster.local:<port>``.

    Upstream's resolver uses the bare MCPServer name (no ``mcp-…-proxy``), unlike ``status.url``
    and flag mode's ``--resource-url``; kept for compatibility.
    """
    port = server.spec.effective_proxy_port()
    return f"http://{server_name(server)}.{server_namespace(server)}.svc.cluster.local:{port}"


def oidc_settings(server: MCPServer, refs: References) -> tuple[rc.OIDCConfig | None, str, str]:
    """Upstream OIDC resolver + ``WithOIDCConfig``: (``oidc_config``, ``thv_ca_bundle``,
    ``jwks_auth_token_file``). The CA bundle and token file go top-level, not into the config."""
    ref = server.spec.oidc_config
    if ref is None:
        return None, "", ""
    resource_url = ref.resource_url or resource_url_default(server)
    issuer = audience = jwks = introspection = client_id = client_secret = ca_bundle = token_file = ""
    allow_private_ip = insecure_allow_http = False
    if ref.type == OIDC_KUBERNETES:
        k8s = ref.kubernetes
        use_cluster_auth = True if k8s is None or k8s.use_cluster_auth is None else k8s.use_cluster_auth
        issuer = (k8s.issuer if k8s is not None else "") or names.K8S_DEFAULT_ISSUER
        audience = (k8s.audience if k8s is not None else "") or names.K8S_DEFAULT_AUDIENCE
        jwks = (k8s.jwks_url if k8s is not None else None) or ""
        introspection = (k8s.introspection_url if k8s is not None else None) or ""
        if use_cluster_auth:
            ca_bundle, token_file, allow_private_ip = names.K8S_CA_BUNDLE_PATH, names.K8S_TOKEN_PATH, True
    elif ref.type == OIDC_CONFIGMAP:
        if ref.config_map is None:
            return None, "", ""
        data = refs.oidc_configmap_data
        if data is None:
            raise RenderError(
                REASON_MISSING_INPUT,
                f"failed to get OIDC ConfigMap {server_namespace(server)}/{ref.config_map.name}",
            )
        # upstream ignores configMap.key and reads these flat keys
        issuer = data.get("issuer", "")
        audience = data.get("audience", "")
        jwks = data.get("jwksUrl", "")
        introspection = data.get("introspectionUrl", "")
        client_id = data.get("clientId", "")
        client_secret = data.get("clientSecret", "")
        ca_bundle = data.get("thvCABundlePath", "")
        token_file = data.get("jwksAuthTokenPath", "")
        allow_private_ip = data.get("jwksAllowPrivateIP") == "true"
    elif ref.type == OIDC_INLINE:
        inline = ref.inline
        if inline is None:
            return None, "", ""
        issuer = inline.issuer
        audience = inline.audience or ""
        jwks = inline.jwks_url or ""
        introspection = inline.introspection_url or ""
        client_id = inline.client_id or ""
        # a clientSecretRef wins: the value then reaches the proxy as TOOLHIVE_OIDC_CLIENT_SECRET
        client_secret = "" if inline.client_secret_ref is not None else (inline.client_secret or "")
        ca_bundle = inline.thv_ca_bundle_path or ""
        token_file = inline.jwks_auth_token_path or ""
        allow_private_ip = inline.jwks_allow_private_ip
        insecure_allow_http = bool(inline.insecure_allow_http)
    else:
        raise RenderError(REASON_INVALID_OIDC, f"unknown OIDC config type: {ref.type}")
    if issuer or audience or jwks or introspection or client_id or client_secret:
        config = rc.OIDCConfig(
            issuer=issuer,
            audience=audience,
            jwks_url=jwks,
            client_id=client_id,
            client_secret=client_secret,
            allow_private_ip=allow_private_ip,
            insecure_allow_http=insecure_allow_http,
            introspection_url=introspection,
            resource_url=resource_url,
        )
    else:
        config = rc.OIDCConfig(resource_url=resource_url)
    return config, ca_bundle, token_file


# --- authorization ------------------------------------------------------------------------------


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_authz(raw: str) -> dict[str, Any]:
    """YAML first (every scalar a string, as Go's yaml into ``string`` fields), then JSON."""
    try:
        doc = yaml.load(raw, Loader=yaml.BaseLoader)  # BaseLoader: strings only, no objects
    except yaml.YAMLError as yaml_err:
        try:
            doc = json.loads(raw)
        except ValueError as json_err:
            raise ValueError(f"{yaml_err}; json fallback error: {json_err}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a mapping")
    return doc


def authz_config(server: MCPServer, refs: References) -> rc.AuthzConfig | None:
    """``authz_config`` for an inline policy set or a user ConfigMap (YAML or JSON, validated)."""
    ref = server.spec.authz_config
    if ref is None:
        return None
    if ref.type == AUTHZ_INLINE:
        if ref.inline is None:
            raise RenderError(
                REASON_INVALID_AUTHZ, "inline authz config type specified but inline config is nil"
            )
        _check_cedar("authzConfig.inline", list(ref.inline.policies), ref.inline.entities_json)
        return rc.AuthzConfig(
            cedar=rc.CedarConfig(policies=list(ref.inline.policies), entities_json=ref.inline.entities_json)
        )
    if ref.type != AUTHZ_CONFIGMAP:
        raise RenderError(REASON_INVALID_AUTHZ, f"unknown authz config type: {ref.type}")
    if ref.config_map is None or not ref.config_map.name:
        raise RenderError(
            REASON_INVALID_AUTHZ, "configMap authz config type specified but reference is missing name"
        )
    ns, cm, key = server_namespace(server), ref.config_map.name, ref.config_map.key or names.AUTHZ_KEY
    data = refs.authz_configmap_data
    if data is None:
        raise RenderError(REASON_MISSING_INPUT, f"failed to get Authz ConfigMap {ns}/{cm}")
    raw = data.get(key)
    if raw is None:
        raise RenderError(REASON_INVALID_AUTHZ, f'authz ConfigMap {ns}/{cm} is missing key "{key}"')
    if not raw.strip():
        raise RenderError(REASON_INVALID_AUTHZ, f'authz ConfigMap {ns}/{cm} key "{key}" is empty')
    where = f'authz ConfigMap {ns}/{cm} key "{key}"'
    try:
        doc = _parse_authz(raw)
    except ValueError as exc:
        raise RenderError(REASON_INVALID_AUTHZ, f"failed to parse {where}: {exc}") from None
    version, kind = _as_str(doc.get("version")), _as_str(doc.get("type"))
    cedar_doc = doc.get("cedar")
    cedar: rc.CedarConfig | None = None
    if isinstance(cedar_doc, dict):
        policies = cedar_doc.get("policies")
        cedar = rc.CedarConfig(
            policies=[_as_str(p) for p in policies] if isinstance(policies, list) else None,
            entities_json=_as_str(cedar_doc.get("entities_json")),
        )
    problem = None
    if not version:
        problem = "version is required"
    elif not kind:
        problem = "type is required"
    elif kind != "cedarv1":
        problem = f"unsupported configuration type: {kind}"
    elif cedar is None:
        problem = f"cedar configuration is required for type {kind}"
    elif not cedar.policies:
        problem = f"at least one policy is required for type {kind}"
    if problem is not None:
        raise RenderError(REASON_INVALID_AUTHZ, f"invalid {where}: {problem}")
    assert cedar is not None and cedar.policies
    _check_cedar(where, cedar.policies, cedar.entities_json or "[]")
    return rc.AuthzConfig(version=version, type=kind, cedar=cedar)


def _check_cedar(where: str, policies: list[str], entities_json: str) -> None:
    """The operator refuses what the runner's authorization middleware would refuse at start."""
    try:
        parse_cedar(policies, entities_json)
    except CedarError as exc:
        raise RenderError(REASON_INVALID_AUTHZ, f"{where}: {exc}") from None


# --- telemetry ----------------------------------------------------------------------------------


def _go_float(value: float) -> float:
    """An integral rate as an int, so it encodes as Go does (``1``, not ``1.0``)."""
    return int(value) if value.is_integer() else value


def _parse_rate(text: str) -> float:
    if not _GO_FLOAT.match(text):
        return DEFAULT_SAMPLING_RATE
    rate = float(text)
    return rate if math.isfinite(rate) else DEFAULT_SAMPLING_RATE


def telemetry_config(server: MCPServer, settings: OperatorSettings) -> rc.TelemetryConfig | None:
    """``telemetry_config``: only with an OTel endpoint (OTel enabled) or Prometheus enabled."""
    telemetry = server.spec.telemetry
    if telemetry is None:
        return None
    endpoint = service = ""
    tracing = metrics = insecure = False
    rate = DEFAULT_SAMPLING_RATE
    header_list: list[str] = []
    otel = telemetry.open_telemetry
    if otel is not None and otel.enabled:
        endpoint = (otel.endpoint or "").removeprefix("https://").removeprefix("http://")
        insecure = otel.insecure
        header_list = list(otel.headers or [])
        service = otel.service_name or server_name(server)
        if otel.tracing is not None:
            tracing = otel.tracing.enabled
            if otel.tracing.sampling_rate:
                rate = _parse_rate(otel.tracing.sampling_rate)
        if otel.metrics is not None:
            metrics = otel.metrics.enabled
    prometheus = telemetry.prometheus is not None and telemetry.prometheus.enabled
    if not endpoint and not prometheus:
        return None
    headers: dict[str, str] = {}
    for header in header_list:
        key, sep, value = header.partition("=")
        if sep:
            headers[key] = value
    return rc.TelemetryConfig(
        endpoint=endpoint,
        service_name=service or DEFAULT_TELEMETRY_SERVICE_NAME,
        service_version=settings.service_version,
        tracing_enabled=tracing,
        metrics_enabled=metrics,
        sampling_rate=_go_float(rate),
        headers=headers,
        insecure=insecure,
        enable_prometheus_metrics_path=prometheus,
        environment_variables=None,
    )


# --- permission profile -------------------------------------------------------------------------


def permission_profile(server: MCPServer, refs: References) -> tuple[str, rc.PermissionProfile]:
    """(``permission_profile_name_or_path``, ``permission_profile``); default builtin ``network``."""
    ref = server.spec.permission_profile
    if ref is None:
        return "", rc.PermissionProfile.builtin_network()
    if ref.type == PERMISSION_PROFILE_BUILTIN:
        if ref.name in ("none", "stdio"):
            return ref.name, rc.PermissionProfile.builtin_none()
        if ref.name == "network":
            return ref.name, rc.PermissionProfile.builtin_network()
        raise RenderError(
            REASON_INVALID_PERMISSION_PROFILE,
            f'unknown builtin permission profile "{ref.name}" (builtin profiles: none, network)',
        )
    if ref.type != PERMISSION_PROFILE_CONFIGMAP:
        raise RenderError(REASON_INVALID_PERMISSION_PROFILE, f"unknown permission profile type: {ref.type}")
    key = ref.key or ""
    path = f"{names.PERMISSION_PROFILE_MOUNT_PATH}/{key}"
    data = refs.permission_profile_data
    if data is None:
        raise RenderError(
            REASON_MISSING_INPUT,
            f"failed to get permission profile ConfigMap {server_namespace(server)}/{ref.name}",
        )
    raw = data.get(key)
    if not raw:
        raise RenderError(
            REASON_INVALID_PERMISSION_PROFILE, f'permission profile ConfigMap {ref.name} has no key "{key}"'
        )
    try:
        profile = msgspec.json.decode(raw, type=rc.PermissionProfile)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RenderError(
            REASON_INVALID_PERMISSION_PROFILE, f"failed to read permission profile {path}: {exc}"
        ) from None
    return path, profile


def _add_volume_mounts(profile: rc.PermissionProfile, volumes: list[str]) -> None:
    """Upstream ``processVolumeMounts``: each volume joins ``read`` (``:ro``) or ``write`` once."""
    existing = {_split_mount(m)[1] for m in (*profile.read, *profile.write)}
    for volume in volumes:
        read_only = volume.endswith(":ro")
        mount = volume.removesuffix(":ro") if read_only else volume
        _source, target = _split_mount(mount)
        if target in existing:
            continue
        (profile.read if read_only else profile.write).append(mount)
        existing.add(target)


def _split_mount(mount: str) -> tuple[str, str]:
    source, sep, target = mount.partition(":")
    if not sep:
        return mount, mount  # a single path mounts at the same place
    if not source or not target or ":" in target:
        raise RenderError(REASON_INVALID_VOLUME, f"invalid volume format: {mount}")
    return source, target


# --- the RunConfig ------------------------------------------------------------------------------


def vault_injected(server: MCPServer) -> bool:
    """Vault agent injection is on (``vault.hashicorp.com/agent-inject: "true"`` on the MCP pod
    template or on the proxy pod-template overrides): env files come from ``/vault/secrets``."""
    pts = server.spec.pod_template_spec or {}
    meta = pts.get("metadata") if isinstance(pts, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict) and annotations.get(names.ANNOTATION_VAULT_AGENT_INJECT) == "true":
        return True
    overrides = server.spec.resource_overrides
    deployment = overrides.proxy_deployment if overrides is not None else None
    template = deployment.pod_template_metadata_overrides if deployment is not None else None
    template_annotations = template.annotations if template is not None else None
    return (template_annotations or {}).get(names.ANNOTATION_VAULT_AGENT_INJECT) == "true"


def _container_transport_label(transport: str, proxy_mode: str) -> str:
    if transport == TRANSPORT_STDIO and proxy_mode == TRANSPORT_STREAMABLE_HTTP:
        return TRANSPORT_STREAMABLE_HTTP
    return transport


def check_derived_names(name: str, transport: str) -> None:
    """The API server admits any RFC 1123 subdomain as an MCPServer name, but the proxy Service
    ``mcp-<name>-proxy`` (and, for sse/streamable-http, the proxy runner's headless Service
    ``mcp-<name>-headless``) must be RFC 1035 labels: no dots, at most 63 characters. Upstream
    creates the other objects and then fails on the Service forever; thv says why up front."""
    derived = [names.service_name(name)]
    if transport in _HTTP_TRANSPORTS:
        derived.append(names.headless_service_name(name))
    for service in derived:
        if not names.is_service_name(service):
            limit = 63 - len(service) + len(name)
            raise RenderError(
                REASON_INVALID_NAME,
                f"MCPServer name {name!r} cannot be used: Service name {service!r} must be an RFC 1035 "
                f"label (lowercase letters, digits and '-', at most 63 characters), so the name must "
                f"have no dots and at most {limit} characters",
            )


def check_pod_references(server: MCPServer) -> None:
    """``spec.serviceAccount`` and ``spec.secrets`` only reach the MCP server pod through the pod
    patch, where the proxy runner's StatefulSet would be refused much later; a name that no
    ServiceAccount or Secret can have is reported now."""
    spec = server.spec
    if spec.service_account and not names.is_object_name(spec.service_account):
        raise RenderError(
            REASON_INVALID_SPEC,
            f"serviceAccount {spec.service_account!r} is not a valid ServiceAccount name "
            "(a lowercase RFC 1123 subdomain)",
        )
    for i, ref in enumerate(spec.secrets or ()):
        if not names.is_object_name(ref.name):
            raise RenderError(
                REASON_INVALID_SPEC,
                f"secrets[{i}].name {ref.name!r} is not a valid Secret name (a lowercase RFC 1123 subdomain)",
            )
        if not names.is_config_key(ref.key):
            raise RenderError(REASON_INVALID_SPEC, f"secrets[{i}].key {ref.key!r} is not a valid Secret key")


def build_run_config(server: MCPServer, settings: OperatorSettings, refs: References) -> rc.RunConfig:
    """The RunConfig upstream's operator would write for ``server`` (validated).

    Raises :class:`RenderError` for anything upstream's builder or validation rejects.
    """
    spec = server.spec
    name = server_name(server)
    if not spec.image:
        raise RenderError(REASON_INVALID_SPEC, "image is required")
    transport = spec.transport or TRANSPORT_STDIO
    check_derived_names(name, transport)
    check_pod_references(server)
    if transport not in TRANSPORTS:
        raise RenderError(
            REASON_INVALID_TRANSPORT,
            f"invalid transport type: {transport}, must be one of: stdio, sse, streamable-http",
        )
    port = spec.effective_proxy_port()
    target_port = spec.effective_mcp_port() or 0
    proxy_mode = spec.proxy_mode or TRANSPORT_SSE

    env_vars = {e.name: e.value for e in spec.env or []}
    env_vars["MCP_TRANSPORT"] = transport
    if target_port > 0 and transport in _HTTP_TRANSPORTS:
        env_vars["MCP_PORT"] = env_vars["FASTMCP_PORT"] = str(target_port)

    volumes = [f"{v.host_path}:{v.mount_path}{':ro' if v.read_only else ''}" for v in spec.volumes or []]
    profile_name, profile = permission_profile(server, refs)
    _add_volume_mounts(profile, volumes)

    tools_filter, tools_override = tools_filter_and_override(server, refs.tool_config_for(server))
    oidc, ca_bundle, token_file = oidc_settings(server, refs)
    ext = refs.external_auth_for(server)
    audit = spec.audit is not None and spec.audit.enabled

    run_config = rc.RunConfig(
        image=spec.image,
        cmd_args=list(spec.args or []),
        name=name,
        container_name=name,
        base_name=name,
        transport=transport,
        host=settings.proxy_host,
        port=port,
        target_port=target_port,
        permission_profile_name_or_path=profile_name,
        permission_profile=profile,
        env_vars=env_vars,
        env_file_dir=names.VAULT_SECRETS_DIR if vault_injected(server) else "",
        volumes=volumes,
        container_labels={
            "toolhive": "true",
            "toolhive-name": name,
            "toolhive-basename": name,
            "toolhive-transport": _container_transport_label(transport, proxy_mode),
            "toolhive-port": str(port),
            "toolhive-tool-type": "mcp",
        },
        oidc_config=oidc,
        token_exchange_config=token_exchange_config(ext) if ext is not None else None,
        authz_config=authz_config(server, refs),
        audit_config=rc.AuditConfig(max_data_size=DEFAULT_AUDIT_MAX_DATA_SIZE) if audit else None,
        telemetry_config=telemetry_config(server, settings),
        trust_proxy_headers=spec.trust_proxy_headers,
        proxy_mode=proxy_mode,
        thv_ca_bundle=ca_bundle,
        jwks_auth_token_file=token_file,
        tools_filter=tools_filter,
        tools_override=tools_override,
    )
    run_config.middleware_configs = middleware_configs(run_config)
    validate_run_config(run_config)
    return run_config


def middleware_configs(config: rc.RunConfig) -> list[rc.MiddlewareConfig]:
    """Upstream ``PopulateMiddlewareConfigs`` (without ``usagemetrics``), in its fixed order."""
    chain = [
        rc.MiddlewareConfig(
            type=rc.MW_AUTH, parameters=rc.AuthMiddlewareParams(oidc_config=config.oidc_config)
        )
    ]
    if config.token_exchange_config is not None:
        chain.append(
            rc.MiddlewareConfig(
                type=rc.MW_TOKEN_EXCHANGE,
                parameters=rc.TokenExchangeMiddlewareParams(
                    token_exchange_config=config.token_exchange_config
                ),
            )
        )
    if config.tools_filter or config.tools_override:
        params = rc.ToolFilterMiddlewareParams(
            filter_tools=list(config.tools_filter) or None,
            tools_override={
                tool: rc.MiddlewareToolOverride(name=o.name, description=o.description)
                for tool, o in config.tools_override.items()
            },
        )
        chain.append(rc.MiddlewareConfig(type=rc.MW_TOOL_FILTER, parameters=params))
        chain.append(rc.MiddlewareConfig(type=rc.MW_TOOL_CALL_FILTER, parameters=params))
    chain.append(rc.MiddlewareConfig(type=rc.MW_MCP_PARSER, parameters=rc.ParserMiddlewareParams()))
    if config.telemetry_config is not None:
        chain.append(
            rc.MiddlewareConfig(
                type=rc.MW_TELEMETRY,
                parameters=rc.TelemetryMiddlewareParams(
                    config=config.telemetry_config, server_name=config.name, transport=config.transport
                ),
            )
        )
    if config.authz_config is not None:
        chain.append(
            rc.MiddlewareConfig(
                type=rc.MW_AUTHORIZATION,
                parameters=rc.AuthzMiddlewareParams(
                    config_path=config.authz_config_path, config_data=config.authz_config
                ),
            )
        )
    if config.audit_config is not None:
        chain.append(
            rc.MiddlewareConfig(
                type=rc.MW_AUDIT,
                parameters=rc.AuditMiddlewareParams(
                    config_path=config.audit_config_path,
                    config_data=config.audit_config,
                    component=config.audit_config.component,
                    transport_type=config.transport,
                ),
            )
        )
    return chain


def validate_run_config(config: rc.RunConfig) -> None:
    """Upstream ``validateRunConfig`` (reference §3 step 9); raises :class:`RenderError`."""
    if not config.image:
        raise RenderError(REASON_INVALID_SPEC, "image is required")
    if not config.name:
        raise RenderError(REASON_INVALID_SPEC, "name is required")
    if config.transport not in TRANSPORTS:
        raise RenderError(
            REASON_INVALID_TRANSPORT,
            f"invalid transport type: {config.transport}, must be one of: stdio, sse, streamable-http",
        )
    if config.transport in _HTTP_TRANSPORTS:
        if config.port <= 0:
            raise RenderError(
                REASON_MISSING_TARGET_PORT, f"port is required for transport type {config.transport}"
            )
        if config.target_port <= 0:
            raise RenderError(
                REASON_MISSING_TARGET_PORT,
                f"target port is required for transport type {config.transport} (set spec.mcpPort)",
            )
    for key, value in sorted(config.env_vars.items()):
        if not key:
            raise RenderError(REASON_INVALID_ENV, "environment variable key cannot be empty")
        if any(c in key for c in "=\n\r\x00"):
            raise RenderError(REASON_INVALID_ENV, f"invalid environment variable key: {key!r}")
        # upstream refuses CR/LF; a NUL can never be part of a process environment either
        if any(c in value for c in "\n\r\x00"):
            raise RenderError(
                REASON_INVALID_ENV, f"environment variable value for {key} contains invalid characters"
            )
    for volume in config.volumes:
        parts = volume.split(":")
        if not volume:
            raise RenderError(REASON_INVALID_VOLUME, "volume mount cannot be empty")
        if not 2 <= len(parts) <= 3:
            raise RenderError(
                REASON_INVALID_VOLUME,
                f"invalid volume mount format: {volume}, expected host-path:container-path[:ro]",
            )
        if not parts[0] or not parts[1]:
            raise RenderError(REASON_INVALID_VOLUME, f"volume mount paths cannot be empty in: {volume}")
        if len(parts) == 3 and parts[2] != "ro":
            raise RenderError(
                REASON_INVALID_VOLUME, f"invalid volume mount option: {parts[2]}, only 'ro' is supported"
            )
    for tool in config.tools_filter:
        if not tool:
            raise RenderError(REASON_INVALID_TOOLS, "tool filter cannot contain empty values")
        if any(c in tool for c in ",\n\r"):
            raise RenderError(
                REASON_INVALID_TOOLS, f"invalid tool name: {tool}, cannot contain commas or newlines"
            )


# --- runconfig.json and its ConfigMap -----------------------------------------------------------


def runconfig_json(config: rc.RunConfig) -> str:
    """``runconfig.json`` exactly as upstream marshals it (2-space indent, no trailing newline)."""
    return go_json_indent(config)


def content_checksum(
    data: Mapping[str, str], labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> str:
    """Upstream ``ComputeConfigMapChecksum``: SHA-256 hex over the sorted data keys (key then
    value), the sorted labels, and the sorted annotations other than the checksum itself,
    with no separators."""
    h = hashlib.sha256()
    for mapping in (data, labels):
        for key in sorted(mapping):
            h.update(key.encode())
            h.update(mapping[key].encode())
    for key in sorted(annotations or {}):
        if key != names.ANNOTATION_CONTENT_CHECKSUM:
            h.update(key.encode())
            h.update((annotations or {})[key].encode())
    return h.hexdigest()


def runconfig_configmap(server: MCPServer, config: rc.RunConfig) -> ConfigMap:
    """ConfigMap ``<name>-runconfig``: key ``runconfig.json``, run-config labels, content checksum."""
    name = server_name(server)
    data = {names.RUNCONFIG_KEY: runconfig_json(config)}
    labels = names.labels_for_runconfig(name)
    return ConfigMap(
        metadata=object_meta(
            server,
            names.runconfig_configmap_name(name),
            labels=labels,
            annotations={names.ANNOTATION_CONTENT_CHECKSUM: content_checksum(data, labels)},
        ),
        data=data,
    )
