"""The operator's side of :mod:`thv.render.resolve`: gather one MCPServer's inputs (no writes)
and resolve them, once per distinct input.

Referenced configs come from the Store. Things thv does not watch — the client Secret (only
whether the key exists; its value is never kept) and user ConfigMaps named by
``oidcConfig``/``authzConfig``/``permissionProfile`` — are read directly, behind a short cache
so the subscribers of one reconcile share one read. The result is remembered per server with
the versions of everything it was computed from, so the renderers and the status writer of one
event render it once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import anyio
import msgspec

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.kube.errors import NotFound
from thv.kube.resources import CONFIGMAPS, SECRETS
from thv.rbac import Need, declare
from thv.render.names import is_object_name
from thv.render.resolve import Inputs, Resolved, Unresolved, reads, resolve
from thv.sources.events import EXTAUTH, TOOLCONFIG
from thv.sources.store import split_key
from thv.sources.stores import references
from thv.subscribers.context import Context

NEEDS = declare(
    "resolver",
    Need("", ("secrets",), ("get",), "check that the token-exchange client secret key exists"),
    Need("", ("configmaps",), ("get",), "read oidc/authz/permission-profile ConfigMaps"),
)
#: how long a read of a Secret's keys or a user ConfigMap is shared
CACHE_TTL = 2.0
_MISSING = "missing"
#: what a shared read remembers: a Secret's key names, a ConfigMap's data, or :data:`_MISSING`
_Cached = str | list[str] | dict[str, str]

__all__ = ("Resolved", "Unresolved", "gather", "resolve_server")


class _KeysOnly(msgspec.Struct):
    data: dict[str, msgspec.Raw] | None = None


class _ConfigMapData(msgspec.Struct):
    data: dict[str, str] | None = None


_keys = msgspec.json.Decoder(_KeysOnly)
_cmdata = msgspec.json.Decoder(_ConfigMapData)


async def _shared_read(ctx: Context, cache_key: str, fetch: Callable[[], Awaitable[_Cached]]) -> _Cached:
    """``fetch()``'s value, shared for :data:`CACHE_TTL` and single-flight: while one read of
    ``cache_key`` is under way, the others wait for it instead of sending their own (a config
    change reaches every server referencing it at once, and they usually share one Secret)."""
    cache, inflight = ctx.inventory.reads, ctx.inventory.inflight
    while True:
        cached = await cache.get(cache_key)
        if cached is not None:
            value: _Cached = cached
            return value
        running = inflight.get(cache_key)
        if running is None:
            break
        await running.wait()  # then the cache has it, unless that read failed: read again
    done = inflight[cache_key] = anyio.Event()
    try:
        value = await fetch()
        await cache.set(cache_key, value, ttl=CACHE_TTL)
        return value
    finally:
        del inflight[cache_key]
        done.set()


async def _secret_keys(ctx: Context, ns: str, name: str) -> frozenset[str] | None:
    async def fetch() -> _Cached:
        try:
            body = await ctx.client.get(SECRETS, name, ns)
        except NotFound:
            return _MISSING
        return sorted((_keys.decode(body).data or {}).keys())

    value = await _shared_read(ctx, f"secret-keys:{ns}/{name}", fetch)
    return None if value == _MISSING else frozenset(value)


async def _configmap_data(ctx: Context, ns: str, name: str) -> dict[str, str] | None:
    async def fetch() -> _Cached:
        try:
            return _cmdata.decode(await ctx.client.get(CONFIGMAPS, name, ns)).data or {}
        except NotFound:
            return _MISSING

    value = await _shared_read(ctx, f"configmap:{ns}/{name}", fetch)
    return None if isinstance(value, str) else dict(value) if isinstance(value, dict) else None


def _ref_key(server: MCPServer, kind: str) -> str | None:
    """The Store key of the config of ``kind`` the server references, unless its name cannot
    exist (never looked up)."""
    for key in references(server, kind):
        if is_object_name(split_key(key)[1]):
            return key
    return None


async def gather(ctx: Context, server: MCPServer) -> Inputs:
    """Everything :func:`~thv.render.resolve.resolve` looks at for ``server``."""
    ns = server.metadata.namespace or ""
    ext_key, tc_key = _ref_key(server, EXTAUTH), _ref_key(server, TOOLCONFIG)
    ext = ctx.stores.extauths.get(ext_key) if ext_key is not None else None
    tc = ctx.stores.toolconfigs.get(tc_key) if tc_key is not None else None
    wanted = reads(server, ext)
    configmaps: dict[str, Mapping[str, str]] = {}
    for name in wanted.configmaps:
        if (data := await _configmap_data(ctx, ns, name)) is not None:
            configmaps[name] = data
    secrets: dict[str, frozenset[str]] = {}
    for name in wanted.secrets:
        if (keys := await _secret_keys(ctx, ns, name)) is not None:
            secrets[name] = keys
    return Inputs(
        server=server, external_auth=ext, tool_config=tc, configmaps=configmaps, secret_keys=secrets
    )


def _fingerprint(inputs: Inputs) -> tuple[object, ...]:
    def rv(obj: MCPServer | MCPExternalAuthConfig | MCPToolConfig | None) -> str | None:
        return None if obj is None else obj.metadata.resource_version

    return (
        rv(inputs.server),
        rv(inputs.external_auth),
        rv(inputs.tool_config),
        tuple(sorted((name, tuple(sorted(data.items()))) for name, data in inputs.configmaps.items())),
        tuple(sorted((inputs.secret_keys or {}).items())),
    )


def _watched_versions(ctx: Context, server: MCPServer) -> tuple[str | None, str | None, str | None]:
    """The resource versions of the watched inputs (the head of :func:`_fingerprint`)."""
    ext_key, tc_key = _ref_key(server, EXTAUTH), _ref_key(server, TOOLCONFIG)
    ext = ctx.stores.extauths.get(ext_key) if ext_key is not None else None
    tc = ctx.stores.toolconfigs.get(tc_key) if tc_key is not None else None
    return (
        server.metadata.resource_version,
        ext.metadata.resource_version if ext is not None else None,
        tc.metadata.resource_version if tc is not None else None,
    )


async def resolve_server(ctx: Context, key: str, *, reuse: bool = False) -> Resolved | Unresolved | None:
    """The server's desired state from current state; ``None`` when it is gone or being deleted.

    ``reuse``: when the watched inputs (server, referenced configs) are those of the remembered
    result, return it without reading the unwatched ones again -- for the status writer's pod
    events, which change nothing that is rendered (a rolling update sends about six per server;
    each would otherwise read the client Secret once its 2 s cache expired)."""
    server = ctx.stores.servers.get(key)
    if server is None or server.metadata.deletion_timestamp:
        ctx.inventory.resolved.pop(key, None)
        return None
    remembered = ctx.inventory.resolved.get(key)
    if reuse and remembered is not None and remembered[0][:3] == _watched_versions(ctx, server):
        return remembered[1]
    inputs = await gather(ctx, server)
    fingerprint = _fingerprint(inputs)
    remembered = ctx.inventory.resolved.get(key)
    if remembered is not None and remembered[0] == fingerprint:
        return remembered[1]
    result = resolve(inputs, ctx.settings)
    ctx.inventory.resolved[key] = (fingerprint, result)
    return result
