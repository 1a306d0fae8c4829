"""Resolve what an MCPServer references and render its desired objects (no writes).

Referenced configs come from the Store. Things thv does not watch — the client Secret (only
whether the key exists; its value is never kept) and user ConfigMaps named by
``oidcConfig``/``authzConfig``/``permissionProfile`` — are read directly, behind a short
aiocache cache so the several subscribers of one reconcile share one read.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from aiocache import SimpleMemoryCache

from thv.api.crds import AUTHZ_CONFIGMAP, OIDC_CONFIGMAP, MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.hashing import config_hash
from thv.kube.errors import NotFound
from thv.kube.resources import CONFIGMAPS, SECRETS
from thv.operator.context import Context
from thv.rbac import Need, declare
from thv.render import Desired, RenderError, render
from thv.render.errors import (
    REASON_INVALID_AUTHZ,
    REASON_INVALID_EXTERNAL_AUTH,
    REASON_INVALID_OIDC,
    REASON_INVALID_PERMISSION_PROFILE,
)
from thv.render.names import is_config_key, is_object_name
from thv.sources.store import split_key

NEEDS = declare(
    "resolver",
    Need("", ("secrets",), ("get",), "check that the token-exchange client secret key exists"),
    Need("", ("configmaps",), ("get",), "read oidc/authz/permission-profile ConfigMaps"),
)
_cache = SimpleMemoryCache()
CACHE_TTL = 2.0


class _KeysOnly(msgspec.Struct):
    data: dict[str, msgspec.Raw] | None = None


class _ConfigMapData(msgspec.Struct):
    data: dict[str, str] | None = None


_keys = msgspec.json.Decoder(_KeysOnly)
_cmdata = msgspec.json.Decoder(_ConfigMapData)


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


async def _secret_keys(ctx: Context, ns: str, name: str) -> frozenset[str] | None:
    cache_key = f"secret-keys:{ns}/{name}"
    cached = await _cache.get(cache_key)
    if cached is not None:
        return None if cached == "missing" else frozenset(cached)
    try:
        body = await ctx.client.get(SECRETS, name, ns)
    except NotFound:
        await _cache.set(cache_key, "missing", ttl=CACHE_TTL)
        return None
    keys = frozenset((_keys.decode(body).data or {}).keys())
    await _cache.set(cache_key, sorted(keys), ttl=CACHE_TTL)
    return keys


async def _configmap_data(ctx: Context, ns: str, name: str) -> dict[str, str] | None:
    cache_key = f"configmap:{ns}/{name}"
    cached = await _cache.get(cache_key)
    if cached is not None:
        return None if cached == "missing" else dict(cached)
    try:
        data = _cmdata.decode(await ctx.client.get(CONFIGMAPS, name, ns)).data or {}
    except NotFound:
        await _cache.set(cache_key, "missing", ttl=CACHE_TTL)
        return None
    await _cache.set(cache_key, data, ttl=CACHE_TTL)
    return data


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


async def resolve(ctx: Context, key: str) -> Resolved | Unresolved | None:
    """``None`` when the server is gone or being deleted."""
    server = ctx.stores.servers.get(key)
    if server is None or server.metadata.deletion_timestamp:
        return None
    ns, _ = split_key(key)
    ns = ns or ""
    spec = server.spec
    ext: MCPExternalAuthConfig | None = None
    tc: MCPToolConfig | None = None
    if spec.external_auth_config_ref is not None:
        ref = spec.external_auth_config_ref.name
        bad = _bad_ref("MCPExternalAuthConfig", "externalAuthConfigRef.name", ref)
        if bad is not None:
            return Unresolved("ExternalAuthConfigNotFound", bad)
        ext = ctx.stores.extauths.get(f"{ns}/{ref}")
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
            keys = await _secret_keys(ctx, ns, sref.name)
            if keys is None:
                return Unresolved("ClientSecretNotFound", f"client secret {ns}/{sref.name} not found", 10.0)
            if sref.key not in keys:
                return Unresolved(
                    "ClientSecretKeyMissing",
                    f'client secret {ns}/{sref.name} is missing key "{sref.key}"',
                    10.0,
                )
    if spec.tool_config_ref is not None:
        ref = spec.tool_config_ref.name
        bad = _bad_ref("MCPToolConfig", "toolConfigRef.name", ref)
        if bad is not None:
            return Unresolved("ToolConfigNotFound", bad)
        tc = ctx.stores.toolconfigs.get(f"{ns}/{ref}")
        if tc is None:
            return Unresolved("ToolConfigNotFound", f"MCPToolConfig {ref} not found in namespace {ns}")
    oidc_data = authz_data = profile_data = None
    # the type decides which source is used (a configMap set next to type inline is ignored,
    # as upstream's resolver and thv's renderers ignore it): fetch only what will be read
    oidc, authz = spec.oidc_config, spec.authz_config
    if oidc is not None and oidc.type == OIDC_CONFIGMAP and oidc.config_map is not None:
        name = oidc.config_map.name
        if (bad := _bad_object_name("ConfigMap", "oidcConfig.configMap.name", name)) is not None:
            return Unresolved(REASON_INVALID_OIDC, bad)
        oidc_data = await _configmap_data(ctx, ns, name)
        if oidc_data is None:
            return Unresolved("OIDCConfigMapNotFound", f"OIDC ConfigMap {ns}/{name} not found", 10.0)
    if authz is not None and authz.type == AUTHZ_CONFIGMAP and authz.config_map is not None:
        name = authz.config_map.name
        if (bad := _bad_object_name("ConfigMap", "authzConfig.configMap.name", name)) is not None:
            return Unresolved(REASON_INVALID_AUTHZ, bad)
        authz_data = await _configmap_data(ctx, ns, name)
        if authz_data is None:
            return Unresolved(
                "AuthzConfigMapNotFound", f"authorization ConfigMap {ns}/{name} not found", 10.0
            )
    pp = spec.permission_profile
    if pp is not None and pp.type == "configmap":
        if (bad := _bad_object_name("ConfigMap", "permissionProfile.name", pp.name)) is not None:
            return Unresolved(REASON_INVALID_PERMISSION_PROFILE, bad)
        profile_data = await _configmap_data(ctx, ns, pp.name)
        if profile_data is None:
            return Unresolved(
                "PermissionProfileNotFound", f"permission profile ConfigMap {ns}/{pp.name} not found", 10.0
            )
    ext_hash = config_hash(ext.spec) if ext is not None else None
    tc_hash = config_hash(tc.spec) if tc is not None else None
    try:
        desired = render(
            server,
            ctx.settings,
            tool_config=tc,
            external_auth=ext,
            oidc_configmap_data=oidc_data,
            authz_configmap_data=authz_data,
            permission_profile_data=profile_data,
            toolconfig_hash=tc_hash,
            extauth_hash=ext_hash,
        )
    except RenderError as err:
        return Unresolved(err.reason, err.message)
    return Resolved(server, desired, tc, ext, tc_hash, ext_hash)
