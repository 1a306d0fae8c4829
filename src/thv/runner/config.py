"""The runner's one typed configuration and its two sources.

``thv-runner run [flags] IMAGE [-- ARGS...]`` is configured either by flags (flag mode) or by an
upstream ``runconfig.json`` (ConfigMap mode, mounted at ``/etc/runconfig/runconfig.json``;
``--runconfig FILE`` overrides the path). Both sources produce one :class:`RunnerConfig`:

* :class:`Workload` — what the runner applies: the MCP server's StatefulSet (image, args, env,
  volumes, permission profile, pod patch) and, for sse/streamable-http, its headless Service;
* :class:`thv.proxy.config.ProxyConfig` — the data plane (listen address, token exchange, OIDC),
  built by the proxy's own parsers (:func:`thv.proxy.config.config_from_flags`,
  :func:`thv.proxy.config.config_from_runconfig`), so ``thv proxy`` and the runner can never read
  the same input differently;
* :class:`Middleware` — tool filter and overrides, authorization, audit, telemetry, OIDC client
  settings: carried and shown, not yet enforced by thv's data plane (see ``docs/runner.md``).

Normalisation shared by both sources, so flag mode and ConfigMap mode of one MCPServer give equal
configs: ``MCP_TRANSPORT`` (and ``MCP_PORT``/``FASTMCP_PORT`` for HTTP transports with a target
port) are added to the env as upstream's builder does; an absent permission profile means builtin
``network``; every ``--volume`` joins the profile's read/write list once; an absent telemetry
service name means the server name; in ConfigMap mode the positional IMAGE and the arguments after
``--`` override the file's ``image`` and ``cmd_args`` (upstream ``thv-proxyrunner`` since
``2485c15e5``), and ``--k8s-pod-patch`` its ``k8s_pod_template_patch``.

Both parsers are pure: besides their arguments they read only ``env`` (for the client secret).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from thv.api import contract
from thv.api import runconfig as rc
from thv.proxy.config import (
    ConfigError,
    ProxyConfig,
    config_from_flags,
    proxy_flags,
)

__all__ = [
    "DEFAULT_RUNCONFIG_PATHS",
    "ConfigError",
    "Invocation",
    "Middleware",
    "RunnerConfig",
    "Workload",
    "parse_invocation",
    "runner_config",
    "runner_config_from_flags",
    "runner_config_from_runconfig",
]

Transport = Literal["stdio", "sse", "streamable-http"]
ProxyMode = Literal["sse", "streamable-http"]
TRANSPORTS: Final = ("stdio", "sse", "streamable-http")
PROXY_MODES: Final = ("sse", "streamable-http")
HTTP_TRANSPORTS: Final = ("sse", "streamable-http")
DEFAULT_RUNCONFIG_PATHS: Final = contract.RUNCONFIG_PATHS
BUILTIN_PROFILES: Final = ("none", "network", "stdio")
DEFAULT_TELEMETRY_SERVICE_NAME: Final = "toolhive-mcp-proxy"
DEFAULT_SAMPLING_RATE: Final = 0.05
DEFAULT_AUDIT_MAX_DATA_SIZE: Final = 1024
_GO_FLOAT: Final = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """The MCP server workload the runner applies (upstream's StatefulSet + headless Service)."""

    name: str
    image: str
    cmd_args: tuple[str, ...] = ()
    transport: Transport = "stdio"
    proxy_mode: ProxyMode = "sse"
    target_port: int = 0
    env: dict[str, str] = msgspec.field(default_factory=dict)
    env_file_dir: str = ""
    volumes: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    #: builtin name, a profile file path, or ``""`` (builtin ``network``)
    permission_profile_source: str = ""
    #: the resolved profile; ``None`` when it is a file not readable here (resolved at start)
    permission_profile: rc.PermissionProfile | None = None
    #: PodTemplateSpec JSON merged into the pod (strategic merge), ``""`` for none
    pod_template_patch: str = ""
    isolate_network: bool = False
    trust_proxy_headers: bool = False
    debug: bool = False


class Middleware(msgspec.Struct, frozen=True, kw_only=True):
    """The middleware settings of the RunConfig (carried; see the module docstring)."""

    tools_filter: tuple[str, ...] = ()
    tools_override: dict[str, rc.ToolOverride] = msgspec.field(default_factory=dict)
    authz_config_path: str = ""
    authz_config: rc.AuthzConfig | None = None
    audit_config_path: str = ""
    audit_config: rc.AuditConfig | None = None
    telemetry: rc.TelemetryConfig | None = None
    oidc_client_id: str = ""
    oidc_introspection_url: str = ""


class RunnerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``thv-runner run`` does, from either source."""

    workload: Workload
    proxy: ProxyConfig
    middleware: Middleware = msgspec.field(default_factory=Middleware)


class Invocation(msgspec.Struct, frozen=True, kw_only=True):
    """What the command line asks for besides the configuration itself."""

    dry_run: bool = False
    namespace: str | None = None
    log_level: str | None = None
    log_format: str = "json"
    #: ``flags`` or the runconfig.json path that was read
    source: str = "flags"


# --- shared normalisation -----------------------------------------------------------------------


def _transport(value: str | None, where: str) -> Transport:
    value = value or "stdio"
    if value == "stdio":
        return "stdio"
    if value == "sse":
        return "sse"
    if value == "streamable-http":
        return "streamable-http"
    raise ConfigError(f"{where}: transport must be one of stdio, sse, streamable-http, not {value!r}")


def _proxy_mode(value: str | None, where: str) -> ProxyMode:
    value = value or "sse"
    if value == "sse":
        return "sse"
    if value == "streamable-http":
        return "streamable-http"
    raise ConfigError(f"{where}: proxy mode must be sse or streamable-http, not {value!r}")


def _env(base: Mapping[str, str], transport: Transport, target_port: int) -> dict[str, str]:
    env = dict(base)
    for key, value in env.items():
        if not key or any(c in key for c in "=\n\r\x00"):
            raise ConfigError(f"invalid environment variable name {key!r}")
        if any(c in value for c in "\n\r\x00"):
            raise ConfigError(f"environment variable {key} has a value with invalid characters")
    env["MCP_TRANSPORT"] = transport
    if target_port > 0 and transport in HTTP_TRANSPORTS:
        env["MCP_PORT"] = env["FASTMCP_PORT"] = str(target_port)
    return dict(sorted(env.items()))


def _check_volume(volume: str) -> None:
    parts = volume.split(":")
    if not 2 <= len(parts) <= 3 or not parts[0] or not parts[1] or (len(parts) == 3 and parts[2] != "ro"):
        raise ConfigError(f"invalid volume {volume!r}: expected host-path:container-path[:ro]")


def _builtin_profile(name: str) -> rc.PermissionProfile | None:
    if name in ("none", "stdio"):
        return rc.PermissionProfile.builtin_none()
    if name == "network":
        return rc.PermissionProfile.builtin_network()
    return None


def _with_volumes(
    profile: rc.PermissionProfile | None, volumes: Sequence[str]
) -> rc.PermissionProfile | None:
    """Upstream ``processVolumeMounts``: each volume joins ``read`` (``:ro``) or ``write`` once."""
    if profile is None:
        return None
    out = msgspec.structs.replace(profile, read=list(profile.read), write=list(profile.write))

    def target(mount: str) -> str:
        source, sep, dest = mount.partition(":")
        return dest if sep else source

    existing = {target(m) for m in (*out.read, *out.write)}
    for volume in volumes:
        read_only = volume.endswith(":ro")
        mount = volume.removesuffix(":ro") if read_only else volume
        if target(mount) in existing:
            continue
        (out.read if read_only else out.write).append(mount)
        existing.add(target(mount))
    return out


def _tools(tools: Sequence[str]) -> tuple[str, ...]:
    """An allow-list is a set: sorted, without duplicates (flag mode renders it sorted)."""
    return tuple(sorted(set(tools)))


def _go_float(value: float) -> float:
    return int(value) if value.is_integer() else value


def _check_pod_patch(patch: str) -> str:
    if not patch:
        return ""
    try:
        doc = json.loads(patch)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--k8s-pod-patch is not valid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ConfigError("--k8s-pod-patch must be a JSON object (a PodTemplateSpec)")
    return patch


# --- flags --------------------------------------------------------------------------------------


def _str(values: Mapping[str, str | bool | tuple[str, ...]], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) else None


def _list(values: Mapping[str, str | bool | tuple[str, ...]], key: str) -> tuple[str, ...]:
    value = values.get(key)
    return value if isinstance(value, tuple) else ()


def _bool(values: Mapping[str, str | bool | tuple[str, ...]], key: str) -> bool | None:
    value = values.get(key)
    return value if isinstance(value, bool) else None


def _int(values: Mapping[str, str | bool | tuple[str, ...]], key: str) -> int:
    text = _str(values, key)
    if text is None:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--{key.replace('_', '-')}: invalid int value {text!r}") from None


def _telemetry_from_flags(
    values: Mapping[str, str | bool | tuple[str, ...]], name: str
) -> rc.TelemetryConfig | None:
    """Upstream flag semantics, with ``--otel-enabled=false`` switching the OTel part off
    (ConfigMap mode's ``openTelemetry.enabled: false``)."""
    endpoint = _str(values, "otel_endpoint") or ""
    enabled = _bool(values, "otel_enabled")
    if enabled is None:
        enabled = bool(endpoint)
    prometheus = bool(_bool(values, "enable_prometheus_metrics_path"))
    headers: dict[str, str] = {}
    tracing = metrics = insecure = False
    rate = DEFAULT_SAMPLING_RATE
    service = ""
    if enabled:
        endpoint = endpoint.removeprefix("https://").removeprefix("http://")
        insecure = bool(_bool(values, "otel_insecure"))
        tracing = bool(_bool(values, "otel_tracing_enabled"))
        metrics = bool(_bool(values, "otel_metrics_enabled"))
        service = _str(values, "otel_service_name") or name
        text = _str(values, "otel_tracing_sampling_rate")
        if text and _GO_FLOAT.match(text) and math.isfinite(float(text)):
            rate = float(text)
        for header in _list(values, "otel_headers"):
            key, sep, value = header.partition("=")
            if sep:
                headers[key] = value
    else:
        endpoint = ""
    if not endpoint and not prometheus:
        return None
    return rc.TelemetryConfig(
        endpoint=endpoint,
        service_name=service or DEFAULT_TELEMETRY_SERVICE_NAME,
        service_version="",  # as the operator renders it: the runtime reports its own version
        tracing_enabled=tracing,
        metrics_enabled=metrics,
        sampling_rate=_go_float(rate),
        headers=headers,
        insecure=insecure,
        enable_prometheus_metrics_path=prometheus,
        environment_variables=list(_list(values, "otel_env_vars")) or None,
    )


def _tools_override(text: str | None) -> dict[str, rc.ToolOverride]:
    if not text:
        return {}
    try:
        return dict(sorted(msgspec.json.decode(text, type=dict[str, rc.ToolOverride]).items()))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"--tools-override: {exc}") from None


def middleware_from_flags(values: Mapping[str, str | bool | tuple[str, ...]], name: str) -> Middleware:
    """The middleware settings of the flags (``--tools``, ``--tools-override``, ``--authz-config``,
    ``--audit-config``/``--enable-audit``, ``--otel-*``, ``--enable-prometheus-metrics-path``,
    ``--oidc-client-id``/``--oidc-introspection-url``): one reading for ``thv-runner run`` and
    ``thv proxy``."""
    tools: list[str] = []
    for item in _list(values, "tools"):
        tools.extend(t.strip() for t in item.split(",") if t.strip())
    audit_path = _str(values, "audit_config") or ""
    audit = (
        rc.AuditConfig(max_data_size=DEFAULT_AUDIT_MAX_DATA_SIZE)
        if _bool(values, "enable_audit") and not audit_path
        else None
    )
    return Middleware(
        tools_filter=_tools(tools),
        tools_override=_tools_override(_str(values, "tools_override")),
        authz_config_path=_str(values, "authz_config") or "",
        audit_config_path=audit_path,
        audit_config=audit,
        telemetry=_telemetry_from_flags(values, name),
        oidc_client_id=_str(values, "oidc_client_id") or "",
        oidc_introspection_url=_str(values, "oidc_introspection_url") or "",
    )


def runner_config_from_flags(
    values: Mapping[str, str | bool | tuple[str, ...]],
    image: str,
    cmd_args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
) -> RunnerConfig:
    """Flag mode: tokenized flags (:func:`thv.api.contract.parse_flags`) → :class:`RunnerConfig`."""
    if values.get("oidc_client_secret") is not None:
        raise ConfigError(f"--oidc-client-secret is not accepted; set ${contract.ENV_OIDC_CLIENT_SECRET}")
    name = _str(values, "name")
    if not name:
        raise ConfigError("--name is required")
    transport = _transport(_str(values, "transport"), "--transport")
    target_port = _int(values, "target_port")
    if transport in HTTP_TRANSPORTS and target_port <= 0:
        raise ConfigError(f"--target-port is required for transport {transport}")
    env_pairs: dict[str, str] = {}
    for item in _list(values, "env"):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--env {key!r}: expected KEY=VALUE")
        env_pairs[key] = value
    volumes = _list(values, "volume")
    for volume in volumes:
        _check_volume(volume)
    profile_source = _str(values, "permission_profile_path") or _str(values, "permission_profile") or ""
    profile = (
        rc.PermissionProfile.builtin_network() if not profile_source else _builtin_profile(profile_source)
    )
    workload = Workload(
        name=name,
        image=image,
        cmd_args=tuple(cmd_args),
        transport=transport,
        proxy_mode=_proxy_mode(_str(values, "proxy_mode"), "--proxy-mode"),
        target_port=target_port,
        env=_env(env_pairs, transport, target_port),
        env_file_dir=_str(values, "env_file_dir") or "",
        volumes=volumes,
        secrets=_list(values, "secret"),
        permission_profile_source=profile_source,
        permission_profile=_with_volumes(profile, volumes),
        pod_template_patch=_check_pod_patch(_str(values, "k8s_pod_patch") or ""),
        isolate_network=bool(_bool(values, "isolate_network")),
        trust_proxy_headers=bool(_bool(values, "trust_proxy_headers")),
        debug=bool(_bool(values, "debug")),
    )
    middleware = middleware_from_flags(values, name)
    proxy = config_from_flags(proxy_flags(values), env=env)
    return RunnerConfig(workload=workload, proxy=proxy, middleware=middleware)


# --- runconfig.json -----------------------------------------------------------------------------


class _RunConfig(msgspec.Struct, kw_only=True):
    """The part of upstream's RunConfig the workload and middleware read (unknown keys ignored)."""

    image: str = ""
    cmd_args: list[str] = msgspec.field(default_factory=list)
    name: str = ""
    transport: str = ""
    proxy_mode: str = ""
    target_port: int = 0
    permission_profile_name_or_path: str = ""
    permission_profile: rc.PermissionProfile | None = None
    env_vars: dict[str, str] = msgspec.field(default_factory=dict)
    env_file_dir: str = ""
    debug: bool = False
    volumes: list[str] = msgspec.field(default_factory=list)
    secrets: list[str] = msgspec.field(default_factory=list)
    k8s_pod_template_patch: str = ""
    isolate_network: bool = False
    trust_proxy_headers: bool = False
    tools_filter: list[str] = msgspec.field(default_factory=list)
    tools_override: dict[str, rc.ToolOverride] = msgspec.field(default_factory=dict)
    oidc_config: rc.OIDCConfig | None = None
    authz_config: rc.AuthzConfig | None = None
    authz_config_path: str = ""
    audit_config: rc.AuditConfig | None = None
    audit_config_path: str = ""
    telemetry_config: rc.TelemetryConfig | None = None


def runner_config_from_runconfig(
    data: bytes,
    *,
    image: str | None = None,
    cmd_args: Sequence[str] | None = None,
    pod_patch: str | None = None,
    overrides: Mapping[str, str | bool | tuple[str, ...]] | None = None,
    env: Mapping[str, str] | None = None,
) -> RunnerConfig:
    """ConfigMap mode: ``runconfig.json`` bytes → :class:`RunnerConfig`. ``image``, ``cmd_args``
    (``None``: keep the file's) and ``pod_patch`` override the file as upstream's runner does;
    ``overrides`` are the listen/target/operation flags (see :func:`config_from_flags`)."""
    try:
        doc = msgspec.json.decode(data, type=_RunConfig)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"runconfig is not valid JSON: {exc}") from None
    except msgspec.ValidationError as exc:
        raise ConfigError(f"runconfig: {exc}") from None
    if not doc.name:
        raise ConfigError("runconfig: name is required")
    transport = _transport(doc.transport, "runconfig transport")
    if transport in HTTP_TRANSPORTS and doc.target_port <= 0:
        raise ConfigError(f"runconfig: target_port is required for transport {transport}")
    for volume in doc.volumes:
        _check_volume(volume)
    profile_source = doc.permission_profile_name_or_path
    profile = doc.permission_profile
    if profile is None:
        profile = (
            rc.PermissionProfile.builtin_network() if not profile_source else _builtin_profile(profile_source)
        )
    final_image = image or doc.image
    if not final_image:
        raise ConfigError("runconfig: image is required (or give IMAGE)")
    workload = Workload(
        name=doc.name,
        image=final_image,
        cmd_args=tuple(doc.cmd_args if cmd_args is None else cmd_args),
        transport=transport,
        proxy_mode=_proxy_mode(doc.proxy_mode, "runconfig proxy_mode"),
        target_port=doc.target_port,
        env=_env(doc.env_vars, transport, doc.target_port),
        env_file_dir=doc.env_file_dir,
        volumes=tuple(doc.volumes),
        secrets=tuple(doc.secrets),
        permission_profile_source=profile_source,
        permission_profile=_with_volumes(profile, doc.volumes),
        pod_template_patch=_check_pod_patch(pod_patch if pod_patch else doc.k8s_pod_template_patch),
        isolate_network=doc.isolate_network,
        trust_proxy_headers=doc.trust_proxy_headers,
        debug=doc.debug,
    )
    telemetry = doc.telemetry_config
    if telemetry is not None:
        telemetry = msgspec.structs.replace(
            telemetry,
            service_name=telemetry.service_name or DEFAULT_TELEMETRY_SERVICE_NAME,
            sampling_rate=_go_float(float(telemetry.sampling_rate)),
        )
    oidc = doc.oidc_config
    middleware = Middleware(
        tools_filter=_tools(doc.tools_filter),
        tools_override=dict(sorted(doc.tools_override.items())),
        authz_config_path=doc.authz_config_path,
        authz_config=doc.authz_config,
        audit_config_path=doc.audit_config_path,
        audit_config=doc.audit_config,
        telemetry=telemetry,
        oidc_client_id=oidc.client_id if oidc is not None else "",
        oidc_introspection_url=oidc.introspection_url if oidc is not None else "",
    )
    flags = proxy_flags(overrides or {})
    proxy = config_from_flags(flags, env=env, runconfig=data)
    return RunnerConfig(workload=workload, proxy=proxy, middleware=middleware)


# --- the command line ---------------------------------------------------------------------------

#: flags that, in ConfigMap mode, may be combined with the runconfig (they do not describe it)
_RUNCONFIG_COMPATIBLE: Final = frozenset(
    {
        "--runconfig",
        "--k8s-pod-patch",
        "--foreground",
        "--debug",
        "--dry-run",
        "--manifest",
        "--namespace",
        "--log-level",
        "--log-format",
        "--host",
        "--proxy-port",
        "--port",
        "--target",
        "--target-url",
        "--target-host",
        "--target-port",
        "--token-exchange-timeout",
        "--token-cache-skew",
        "--no-token-cache",
    }
)


def parse_invocation(argv: Sequence[str]) -> tuple[Invocation, contract.ParsedFlags]:
    """Tokenize ``run``'s arguments: ``[flags] IMAGE [-- ARGS...]``. Raises :class:`ConfigError`."""
    try:
        parsed = contract.parse_flags(argv)
    except contract.ContractError as exc:
        raise ConfigError(str(exc)) from None
    if len(parsed.positionals) != 1:
        if not parsed.positionals:
            raise ConfigError("IMAGE is required: thv-runner run [flags] IMAGE [-- ARGS...]")
        raise ConfigError(
            f"unexpected argument {parsed.positionals[1]!r} (arguments for the server go after --)"
        )
    log_format = _str(parsed.values, "log_format") or "json"
    if log_format not in ("json", "console"):
        raise ConfigError(f"--log-format must be json or console, not {log_format!r}")
    return (
        Invocation(
            dry_run=bool(_bool(parsed.values, "dry_run")),
            namespace=_str(parsed.values, "namespace"),
            log_level=_str(parsed.values, "log_level"),
            log_format=log_format,
        ),
        parsed,
    )


def runner_config(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    runconfig_paths: Sequence[str] = DEFAULT_RUNCONFIG_PATHS,
    runconfig_data: tuple[str, bytes] | None = None,
) -> tuple[Invocation, RunnerConfig]:
    """``thv-runner run`` arguments → (:class:`Invocation`, :class:`RunnerConfig`).

    ConfigMap mode when ``--runconfig FILE`` is given or one of ``runconfig_paths`` exists (the
    first existing one, as upstream); flag mode otherwise. In ConfigMap mode a flag that describes
    the server (``--transport``, ``--token-exchange-*``, ``--env`` …) is refused: the file is the
    one source of truth. Reads that file; nothing else besides ``env``. ``runconfig_data``
    (name, bytes) stands for a file already read (``--dry-run`` of a rendered manifest).
    """
    invocation, parsed = parse_invocation(argv)
    env = os.environ if env is None else env
    image = parsed.positionals[0]
    path = _str(parsed.values, "runconfig")
    if path is None and runconfig_data is not None:
        path = runconfig_data[0]
    if path is None:
        path = next((p for p in runconfig_paths if os.path.isfile(p)), None)
    if path is None:
        return invocation, runner_config_from_flags(parsed.values, image, parsed.rest, env=env)
    mixed = [f for f in parsed.given if f not in _RUNCONFIG_COMPATIBLE]
    if mixed:
        raise ConfigError(f"{mixed[0]} cannot be combined with the runconfig {path} (ConfigMap mode)")
    if runconfig_data is not None and runconfig_data[0] == path:
        data = runconfig_data[1]
    else:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ConfigError(f"--runconfig: cannot read {path}: {exc.strerror}") from None
    overrides = {k: v for k, v in parsed.values.items() if k != "runconfig"}
    config = runner_config_from_runconfig(
        data,
        image=image,
        cmd_args=parsed.rest if parsed.rest else None,
        pod_patch=_str(parsed.values, "k8s_pod_patch"),
        overrides=overrides,
        env=env,
    )
    return msgspec.structs.replace(invocation, source=path), config
