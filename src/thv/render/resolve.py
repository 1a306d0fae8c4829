"""The one way from an MCPServer to its desired objects: (server, what it references, settings)
→ :class:`Resolved` or :class:`Unresolved`. Pure.

Callers only *gather* :class:`Inputs`: the operator from its Store and a few API reads
(``thv.subscribers.gather``), ``thv render`` and the runner's ``--dry-run --manifest`` from
the manifest files (``thv.render.manifests``, one gatherer for both). :func:`reads` says which
ConfigMaps and Secrets to fetch (never a name that is not a valid object name, so no read can
climb an API path); :func:`resolve` checks the references, with the same reasons and messages
for every caller, and renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from thv.api.crds import AUTHZ_CONFIGMAP, OIDC_CONFIGMAP, MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.hashing import config_hash
from thv.render.desired import Desired, render
from thv.render.errors import (
    REASON_INVALID_AUTHZ,
    REASON_INVALID_EXTERNAL_AUTH,
    REASON_INVALID_OIDC,
    REASON_INVALID_PERMISSION_PROFILE,
    RenderError,
)
from thv.render.names import is_config_key, is_object_name
from thv.render.settings import OperatorSettings

#: re-check inputs thv does not watch (Secrets, user ConfigMaps) after this many seconds
UNWATCHED_RETRY = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """What was found for one MCPServer, in its namespace.

    ``external_auth``/``tool_config``: the referenced configs, ``None`` when not found;
    ``configmaps``: ``data`` of the ConfigMaps found, by name; ``secret_keys``: the keys of the
    Secrets found, by name, or ``None`` when Secrets were not looked at (``thv render`` without
    Secret manifests): then the client secret is assumed present.
    """

    server: MCPServer
    external_auth: MCPExternalAuthConfig | None = None
    tool_config: MCPToolConfig | None = None
    configmaps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secret_keys: Mapping[str, frozenset[str]] | None = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unresolved:
    """The server cannot be rendered now; existing objects stay untouched."""

    reason: str
    message: str
    #: re-check after this many seconds (for inputs thv does not watch), else wait for an event
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    server: MCPServer
    desired: Desired
    tool_config: MCPToolConfig | None
    external_auth: MCPExternalAuthConfig | None
    toolconfig_hash: str | None
    extauth_hash: str | None


@dataclass(frozen=True, slots=True)
class Reads:
    """The unwatched objects to fetch for a server (valid names only)."""

    configmaps: tuple[str, ...]
    secrets: tuple[str, ...]


def _bad_ref(kind: str, field: str, name: str) -> str | None:
    """Why a config ref cannot name an object in the server's namespace (``None``: it can)."""
    if is_object_name(name):
        return None
    why = "references are same-namespace only" if "/" in name else "not a valid object name"
    return f"{kind} {name!r} not found ({field}: {why})"


def _bad_object_name(kind: str, field: str, name: str) -> str | None:
    """Referenced names are checked before they become part of an API path: a name such as
    ``..`` or ``a/b`` would otherwise GET another resource (the namespace, a subresource)."""
    if is_object_name(name):
        return None
    return f"{field} {name!r} is not a valid {kind} name (a lowercase RFC 1123 subdomain)"


def _configmap_refs(server: MCPServer) -> list[tuple[str, str, str, str]]:
    """(field, name, invalid reason, missing reason + message prefix) of each ConfigMap the
    spec names. The type decides which source is used (a configMap set next to type inline is
    ignored, as upstream's resolver and thv's renderers ignore it)."""
    spec = server.spec
    out: list[tuple[str, str, str, str]] = []
    oidc, authz, pp = spec.oidc_config, spec.authz_config, spec.permission_profile
    if oidc is not None and oidc.type == OIDC_CONFIGMAP and oidc.config_map is not None:
        out.append(("oidcConfig.configMap.name", oidc.config_map.name, REASON_INVALID_OIDC, "OIDC"))
    if authz is not None and authz.type == AUTHZ_CONFIGMAP and authz.config_map is not None:
        out.append(("authzConfig.configMap.name", authz.config_map.name, REASON_INVALID_AUTHZ, "authz"))
    if pp is not None and pp.type == "configmap":
        out.append(("permissionProfile.name", pp.name, REASON_INVALID_PERMISSION_PROFILE, "profile"))
    return out


def reads(server: MCPServer, external_auth: MCPExternalAuthConfig | None) -> Reads:
    """The ConfigMaps and Secrets :func:`resolve` will look at, for the gatherer to fetch."""
    configmaps = tuple(name for _, name, _, _ in _configmap_refs(server) if is_object_name(name))
    secrets: tuple[str, ...] = ()
    te = external_auth.spec.token_exchange if external_auth is not None else None
    if te is not None and te.client_secret_ref is not None and is_object_name(te.client_secret_ref.name):
        secrets = (te.client_secret_ref.name,)
    return Reads(configmaps, secrets)


_MISSING = {
    "OIDC": ("OIDCConfigMapNotFound", "OIDC ConfigMap {ns}/{name} not found"),
    "authz": ("AuthzConfigMapNotFound", "authorization ConfigMap {ns}/{name} not found"),
    "profile": ("PermissionProfileNotFound", "permission profile ConfigMap {ns}/{name} not found"),
}


def resolve(inputs: Inputs, settings: OperatorSettings) -> Resolved | Unresolved:
    """Check what ``inputs.server`` references and render it."""
    server = inputs.server
    ns = server.metadata.namespace or ""
    spec = server.spec
    ext, tc = inputs.external_auth, inputs.tool_config
    if spec.external_auth_config_ref is not None:
        ref = spec.external_auth_config_ref.name
        bad = _bad_ref("MCPExternalAuthConfig", "externalAuthConfigRef.name", ref)
        if bad is not None:
            return Unresolved("ExternalAuthConfigNotFound", bad)
        if ext is None:
            return Unresolved(
                "ExternalAuthConfigNotFound", f"MCPExternalAuthConfig {ref} not found in namespace {ns}"
            )
        te = ext.spec.token_exchange
        if te is not None and te.client_secret_ref is not None:
            sref = te.client_secret_ref
            bad = _bad_object_name("Secret", "tokenExchange.clientSecretRef.name", sref.name)
            if bad is None and not is_config_key(sref.key):
                bad = f"tokenExchange.clientSecretRef.key {sref.key!r} is not a valid Secret key"
            if bad is not None:
                return Unresolved(REASON_INVALID_EXTERNAL_AUTH, f"MCPExternalAuthConfig {ref}: {bad}")
            if inputs.secret_keys is not None:
                keys = inputs.secret_keys.get(sref.name)
                if keys is None:
                    return Unresolved(
                        "ClientSecretNotFound", f"client secret {ns}/{sref.name} not found", UNWATCHED_RETRY
                    )
                if sref.key not in keys:
                    return Unresolved(
                        "ClientSecretKeyMissing",
                        f'client secret {ns}/{sref.name} is missing key "{sref.key}"',
                        UNWATCHED_RETRY,
                    )
    else:
        ext = None
    if spec.tool_config_ref is not None:
        ref = spec.tool_config_ref.name
        bad = _bad_ref("MCPToolConfig", "toolConfigRef.name", ref)
        if bad is not None:
            return Unresolved("ToolConfigNotFound", bad)
        if tc is None:
            return Unresolved("ToolConfigNotFound", f"MCPToolConfig {ref} not found in namespace {ns}")
    else:
        tc = None
    data: dict[str, Mapping[str, str]] = {}
    for field_name, name, invalid, what in _configmap_refs(server):
        if (bad := _bad_object_name("ConfigMap", field_name, name)) is not None:
            return Unresolved(invalid, bad)
        found = inputs.configmaps.get(name)
        if found is None:
            reason, message = _MISSING[what]
            return Unresolved(reason, message.format(ns=ns, name=name), UNWATCHED_RETRY)
        data[what] = found
    ext_hash = config_hash(ext.spec) if ext is not None else None
    tc_hash = config_hash(tc.spec) if tc is not None else None
    try:
        desired = render(
            server,
            settings,
            tool_config=tc,
            external_auth=ext,
            oidc_configmap_data=data.get("OIDC"),
            authz_configmap_data=data.get("authz"),
            permission_profile_data=data.get("profile"),
            toolconfig_hash=tc_hash,
            extauth_hash=ext_hash,
        )
    except RenderError as err:
        return Unresolved(err.reason, err.message)
    return Resolved(server, desired, tc, ext, tc_hash, ext_hash)
