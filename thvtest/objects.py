"""Typed CRD objects for the unit tests of the pure renderers, one builder per kind.

The spec is given as YAML text (``"image: img\\ntransport: sse"``, as a test reads best) or as a
mapping; name and namespace default to ``srv``/``ext``/``tc`` in ``ns``. ``metadata`` adds fields
(``uid``, ``annotations`` …) and ``status``/``config_hash`` the status, so a test states only
what it is about. The plain-dict manifests the API server takes are :mod:`thvtest.manifests`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
import yaml

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thvtest.manifests import API_VERSION

_T = TypeVar("_T")


def spec_of(spec: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A spec from YAML text or a mapping (a copy)."""
    if isinstance(spec, str):
        loaded = yaml.safe_load(spec)
        return dict(loaded) if isinstance(loaded, dict) else {}
    return dict(spec or {})


def _convert(
    cls: type[_T],
    kind: str,
    name: str,
    namespace: str,
    spec: dict[str, Any],
    metadata: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
) -> _T:
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, **(metadata or {})},
        "spec": spec,
    }
    if status is not None:
        doc["status"] = dict(status)
    return msgspec.convert(doc, cls)


def _hash_status(config_hash: str | None) -> dict[str, str] | None:
    return None if config_hash is None else {"configHash": config_hash}


def server(
    spec: str | Mapping[str, Any] = "image: img",
    *,
    name: str = "srv",
    namespace: str = "ns",
    metadata: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
) -> MCPServer:
    """An MCPServer with exactly ``spec`` (no defaults added)."""
    return _convert(MCPServer, "MCPServer", name, namespace, spec_of(spec), metadata, status)


def extauth(
    token_exchange: str | Mapping[str, Any],
    *,
    name: str = "ext",
    namespace: str = "ns",
    config_hash: str | None = None,
) -> MCPExternalAuthConfig:
    """An MCPExternalAuthConfig of type ``tokenExchange`` with these ``tokenExchange`` fields."""
    spec = {"type": "tokenExchange", "tokenExchange": spec_of(token_exchange)}
    return _convert(
        MCPExternalAuthConfig,
        "MCPExternalAuthConfig",
        name,
        namespace,
        spec,
        None,
        _hash_status(config_hash),
    )


def toolconfig(
    spec: str | Mapping[str, Any],
    *,
    name: str = "tc",
    namespace: str = "ns",
    config_hash: str | None = None,
) -> MCPToolConfig:
    """An MCPToolConfig (``toolsFilter``, ``toolsOverride``)."""
    return _convert(
        MCPToolConfig, "MCPToolConfig", name, namespace, spec_of(spec), None, _hash_status(config_hash)
    )
