"""Proxy container args: flag mode (``TOOLHIVE_USE_CONFIGMAP`` false) and ConfigMap mode.

Flag mode follows upstream's last flag-mode format (``71e293497^``, reference §9), in order:

1. ``run --foreground=true --proxy-port=<port> --name=<name> --transport=<t> --host=<host>``
2. ``[--target-port=<n>] --proxy-mode=<mode> [--trust-proxy-headers]``
3. ``[--k8s-pod-patch=<json>]``
4. ``[--permission-profile=<builtin> | --permission-profile-path=/etc/toolhive/profiles/<key>]``
5. ``[OIDC flags] [--resource-url=…]`` (only with ``oidcConfig``)
6. ``[token-exchange flags]`` (only with ``externalAuthConfigRef``; thv addition, see below)
7. ``[--authz-config=/etc/toolhive/authz/authz.json] [--enable-audit]``
8. ``[--env=K=V …] [--volume=host:mount[:ro] …] [--tools=<sorted,comma-joined>] [--tools-override=<json>]``
9. ``[--otel-enabled=true|false --otel-… flags] [--enable-prometheus-metrics-path]``
10. ``[--env-file-dir=/vault/secrets]``
11. ``<image> [-- <spec.args…>]``

Deliberate differences from upstream's flag mode:

* token-exchange flags (upstream never had them): ``--token-exchange-url``,
  ``--token-exchange-client-id``, ``--token-exchange-audience``, ``--token-exchange-scopes``
  (**one** flag, scopes comma-joined: both ``thv proxy`` and upstream's ``thv run`` parse a
  comma list, so a scope containing a comma is refused), ``--token-exchange-subject-token-type``
  (the full URN), ``--token-exchange-header-name``. The client secret is never a flag: it
  reaches the container only as ``TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET`` from a secretKeyRef.
  Upstream's ``thv-proxyrunner`` whitelists unknown flags, so it **silently ignores** these
  (see :func:`runner_ignores_token_exchange_flags`);
* ``--tools`` also honours ``toolConfigRef`` (its ``toolsFilter``); its ``toolsOverride`` goes in
  ``--tools-override=<json>`` and ``spec.volumes`` in ``--volume`` (upstream's runner flag), and
  ``--otel-enabled`` carries ``openTelemetry.enabled`` (``false`` included), so that with thv's
  runner flag mode carries everything ConfigMap mode does (``tests/runner/test_runner_config.py``);
* ``--env-file-dir`` comes before the image (upstream appended it after ``--``, where it became
  an MCP server argument).

ConfigMap mode (upstream since ``71e293497``): ``run --foreground=true [--k8s-pod-patch=<json>]
<image> [-- <spec.args…>]``; everything else is in ``/etc/runconfig/runconfig.json`` (the args are
repeated after ``--`` because upstream's runner replaces the file's ``cmd_args`` with them).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from thv.api.contract import flag
from thv.api.crds import (
    AUTHZ_CONFIGMAP,
    AUTHZ_INLINE,
    OIDC_CONFIGMAP,
    OIDC_INLINE,
    OIDC_KUBERNETES,
    PERMISSION_PROFILE_BUILTIN,
    PERMISSION_PROFILE_CONFIGMAP,
    MCPServer,
)
from thv.render import names
from thv.render.common import go_json, server_name, server_namespace
from thv.render.errors import REASON_INVALID_EXTERNAL_AUTH, REASON_MISSING_INPUT, RenderError
from thv.render.refs import References
from thv.render.runconfig import token_exchange_config, tools_filter_and_override, vault_injected
from thv.render.settings import OperatorSettings

__all__ = [
    "UPSTREAM_PROXYRUNNER_REPOSITORY",
    "configmap_mode_args",
    "flag_mode_args",
    "flag_mode_warnings",
    "is_thv_runner_image",
    "oidc_flags",
    "runner_ignores_token_exchange_flags",
    "runner_needs_runconfig",
    "token_exchange_flags",
]

UPSTREAM_PROXYRUNNER_REPOSITORY: Final = "ghcr.io/stacklok/toolhive/proxyrunner"
_DIGEST = re.compile(r"@[A-Za-z0-9_+.-]+:[0-9A-Fa-f]+$")


def _repository(image: str) -> str:
    image = _DIGEST.sub("", image.strip())
    slash, colon = image.rfind("/"), image.rfind(":")
    return image[:colon] if colon > slash else image


def runner_ignores_token_exchange_flags(runner_image: str) -> bool:
    """True for upstream's proxy runner (``ghcr.io/stacklok/toolhive/proxyrunner``, any tag or
    digest): it has no ``--token-exchange-*`` flags and silently ignores them, so a flag-mode
    MCPServer with ``externalAuthConfigRef`` runs **without** token exchange. Warn loudly."""
    return _repository(runner_image).lower() == UPSTREAM_PROXYRUNNER_REPOSITORY


_VERSION_TAG = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def is_thv_runner_image(runner_image: str) -> bool:
    """thv's own image (repository ``…/thv``: ``ghcr.io/thv-dev/thv``, ``localhost/thv``): its
    entrypoint is ``thv``, so the proxy container is given ``command: [thv-runner]``. Any other
    image (upstream's proxyrunner wherever it is mirrored, a custom runner) keeps its entrypoint."""
    return _repository(runner_image).lower().rsplit("/", 1)[-1] == "thv"


def runner_needs_runconfig(runner_image: str) -> bool:
    """True for upstream's proxy runner from v0.6.1 (``b6325682c``), ``latest``, an untagged or
    digest-only reference included: it exits without ``runconfig.json``, so flag mode cannot run."""
    if not runner_ignores_token_exchange_flags(runner_image):
        return False
    image = runner_image.strip()
    if "@" in image:
        return True  # a digest says nothing about the version: assume a current one
    slash, colon = image.rfind("/"), image.rfind(":")
    tag = image[colon + 1 :] if colon > slash else "latest"
    match = _VERSION_TAG.match(tag)
    if match is None:
        return True
    return tuple(int(part) for part in match.groups()) >= (0, 6, 1)


def configmap_mode_args(server: MCPServer, pod_patch: str | None) -> list[str]:
    """``run --foreground=true [--k8s-pod-patch=<json>] <image> [-- <spec.args…>]`` (upstream at
    ``5bc66cc9c`` without the args, which its runner then lost)."""
    args = ["run", "--foreground=true"]
    if pod_patch is not None:
        args.append(f"--k8s-pod-patch={pod_patch}")
    args.append(server.spec.image)
    if server.spec.args:
        # upstream's runner replaces the RunConfig's cmd_args with what follows "--" (5bc66cc9c)
        args.extend(["--", *server.spec.args])
    return args


def oidc_flags(server: MCPServer, refs: References) -> list[str]:
    """Upstream flag mode's OIDC flags and ``--resource-url`` (empty without ``oidcConfig``)."""
    ref = server.spec.oidc_config
    if ref is None:
        return []
    name, ns = server_name(server), server_namespace(server)
    args: list[str] = []
    if ref.type == OIDC_KUBERNETES:
        k8s = ref.kubernetes
        use_cluster_auth = True if k8s is None or k8s.use_cluster_auth is None else k8s.use_cluster_auth
        args.append(f"--oidc-issuer={(k8s.issuer if k8s else '') or names.K8S_DEFAULT_ISSUER}")
        args.append(f"--oidc-audience={(k8s.audience if k8s else '') or names.K8S_DEFAULT_AUDIENCE}")
        if k8s is not None and k8s.jwks_url:
            args.append(f"--oidc-jwks-url={k8s.jwks_url}")
        if k8s is not None and k8s.introspection_url:
            args.append(f"--oidc-introspection-url={k8s.introspection_url}")
        if use_cluster_auth:
            args.append(f"--thv-ca-bundle={names.K8S_CA_BUNDLE_PATH}")
            args.append(f"--jwks-auth-token-file={names.K8S_TOKEN_PATH}")
            args.append("--jwks-allow-private-ip")
        account = (k8s.service_account if k8s else None) or "default"
        account_ns = (k8s.namespace if k8s else None) or ns
        args.append(f"--oidc-client-id={account}.{account_ns}.svc.cluster.local")
    elif ref.type == OIDC_CONFIGMAP and ref.config_map is not None:
        data = refs.oidc_configmap_data
        if data is None:
            raise RenderError(
                REASON_MISSING_INPUT, f"failed to get OIDC ConfigMap {ns}/{ref.config_map.name}"
            )
        for key, flag in (
            ("issuer", "--oidc-issuer"),
            ("audience", "--oidc-audience"),
            ("jwksUrl", "--oidc-jwks-url"),
            ("introspectionUrl", "--oidc-introspection-url"),
            ("clientId", "--oidc-client-id"),
            ("clientSecret", "--oidc-client-secret"),
            ("thvCABundlePath", "--thv-ca-bundle"),
            ("jwksAuthTokenPath", "--jwks-auth-token-file"),
        ):
            if data.get(key):
                args.append(f"{flag}={data[key]}")
        if data.get("jwksAllowPrivateIP") == "true":
            args.append("--jwks-allow-private-ip")
    elif ref.type == OIDC_INLINE and ref.inline is not None:
        inline = ref.inline
        for value, flag in (
            (inline.issuer, "--oidc-issuer"),
            (inline.audience, "--oidc-audience"),
            (inline.jwks_url, "--oidc-jwks-url"),
            (inline.introspection_url, "--oidc-introspection-url"),
            (inline.thv_ca_bundle_path, "--thv-ca-bundle"),
            (inline.jwks_auth_token_path, "--jwks-auth-token-file"),
        ):
            if value:
                args.append(f"{flag}={value}")
        if inline.jwks_allow_private_ip:
            args.append("--jwks-allow-private-ip")
        if inline.client_id:
            args.append(f"--oidc-client-id={inline.client_id}")
    resource_url = ref.resource_url or names.service_url(name, ns, server.spec.effective_proxy_port())
    args.append(f"--resource-url={resource_url}")
    return args


def token_exchange_flags(server: MCPServer, refs: References) -> list[str]:
    """``--token-exchange-*`` flags for ``externalAuthConfigRef`` (never the client secret)."""
    ext = refs.external_auth_for(server)
    if ext is None:
        return []
    te = token_exchange_config(ext)
    args = [flag("--token-exchange-url", te.token_url)]
    if te.client_id:
        args.append(flag("--token-exchange-client-id", te.client_id))
    if te.audience:
        args.append(flag("--token-exchange-audience", te.audience))
    if te.scopes:
        bad = [s for s in te.scopes if "," in s]
        if bad:
            raise RenderError(
                REASON_INVALID_EXTERNAL_AUTH,
                f"scope {bad[0]!r} contains a comma, which --token-exchange-scopes cannot carry "
                "(use ConfigMap mode)",
            )
        args.append(flag("--token-exchange-scopes", ",".join(te.scopes)))
    if te.subject_token_type:
        args.append(flag("--token-exchange-subject-token-type", te.subject_token_type))
    if te.external_token_header_name:
        args.append(flag("--token-exchange-header-name", te.external_token_header_name))
    return args


def _otel_flags(server: MCPServer) -> list[str]:
    telemetry = server.spec.telemetry
    if telemetry is None:
        return []
    args: list[str] = []
    otel = telemetry.open_telemetry
    if otel is not None:
        args.append(flag("--otel-enabled", otel.enabled))
        if otel.endpoint:
            args.append(f"--otel-endpoint={otel.endpoint}")
        if otel.service_name:
            args.append(f"--otel-service-name={otel.service_name}")
        args.extend(f"--otel-headers={header}" for header in otel.headers or [])
        if otel.insecure:
            args.append("--otel-insecure")
        if otel.tracing is not None:
            if otel.tracing.enabled:
                args.append("--otel-tracing-enabled=true")
                args.append(f"--otel-tracing-sampling-rate={otel.tracing.sampling_rate}")
            else:
                args.append("--otel-tracing-enabled=false")
        if otel.metrics is not None:
            args.append(f"--otel-metrics-enabled={'true' if otel.metrics.enabled else 'false'}")
    if telemetry.prometheus is not None and telemetry.prometheus.enabled:
        args.append("--enable-prometheus-metrics-path")
    return args


def flag_mode_args(
    server: MCPServer, settings: OperatorSettings, refs: References, pod_patch: str | None
) -> list[str]:
    """All proxy container args in flag mode (see the module docstring for the order)."""
    spec = server.spec
    name = server_name(server)
    args = [
        "run",
        "--foreground=true",
        f"--proxy-port={spec.effective_proxy_port()}",
        f"--name={name}",
        f"--transport={spec.transport}",
        f"--host={settings.proxy_host}",
    ]
    target_port = spec.effective_mcp_port()
    if target_port:
        args.append(f"--target-port={target_port}")
    if spec.proxy_mode:
        args.append(f"--proxy-mode={spec.proxy_mode}")
    if spec.trust_proxy_headers:
        args.append("--trust-proxy-headers")
    if pod_patch is not None:
        args.append(f"--k8s-pod-patch={pod_patch}")
    profile = spec.permission_profile
    if profile is not None:
        if profile.type == PERMISSION_PROFILE_BUILTIN:
            args.append(f"--permission-profile={profile.name}")
        elif profile.type == PERMISSION_PROFILE_CONFIGMAP:
            args.append(
                f"--permission-profile-path={names.PERMISSION_PROFILE_MOUNT_PATH}/{profile.key or ''}"
            )
    args.extend(oidc_flags(server, refs))
    args.extend(token_exchange_flags(server, refs))
    authz = spec.authz_config
    if authz is not None and (
        (authz.type == AUTHZ_CONFIGMAP and authz.config_map is not None)
        or (authz.type == AUTHZ_INLINE and authz.inline is not None)
    ):
        args.append(f"--authz-config={names.AUTHZ_CONFIG_PATH}")
    if spec.audit is not None and spec.audit.enabled:
        args.append("--enable-audit")
    args.extend(f"--env={e.name}={e.value}" for e in spec.env or [])
    args.extend(
        flag("--volume", f"{v.host_path}:{v.mount_path}{':ro' if v.read_only else ''}")
        for v in spec.volumes or []
    )
    tools, overrides = tools_filter_and_override(server, refs.tool_config_for(server))
    if tools:
        args.append(f"--tools={','.join(sorted(tools))}")
    if overrides:
        args.append(flag("--tools-override", go_json(msgspec.to_builtins(overrides))))
    args.extend(_otel_flags(server))
    if vault_injected(server):
        args.append(f"--env-file-dir={names.VAULT_SECRETS_DIR}")
    args.append(spec.image)
    if spec.args:
        args.extend(["--", *spec.args])
    return args


def flag_mode_warnings(server: MCPServer, settings: OperatorSettings, refs: References) -> list[str]:
    """What flag mode cannot deliver for this MCPServer (for events/logs; empty when all is well)."""
    warnings: list[str] = []
    if server.spec.external_auth_config_ref is not None and runner_ignores_token_exchange_flags(
        settings.runner_image
    ):
        warnings.append(
            f"runner image {settings.runner_image} ignores --token-exchange-* flags: MCPServer "
            f"{server_name(server)} runs WITHOUT token exchange in flag mode; use ConfigMap mode "
            "(TOOLHIVE_USE_CONFIGMAP=true) or a runner that supports the flags"
        )
    if runner_needs_runconfig(settings.runner_image):
        warnings.append(
            f"runner image {settings.runner_image} refuses to start without a runconfig.json "
            f"(upstream proxyrunner v0.6.1 and later): MCPServer {server_name(server)} will crash-loop in "
            "flag mode; use ConfigMap mode (TOOLHIVE_USE_CONFIGMAP=true) or thv's runner image"
        )
    tool_config = refs.tool_config_for(server)
    if (
        tool_config is not None
        and tool_config.spec.tools_override
        and runner_ignores_token_exchange_flags(settings.runner_image)
    ):
        warnings.append(
            f"MCPToolConfig {tool_config.metadata.name} toolsOverride cannot be passed as flags to "
            f"runner image {settings.runner_image}; only its toolsFilter applies in flag mode"
        )
    return warnings
