"""Manifests as the API server takes them (plain dicts), one builder per kind.

Every builder returns a fresh dict; keyword arguments set spec fields (camelCase, as on the
wire), and ``None`` leaves a field out, so a test states only what it is about.
"""

from __future__ import annotations

from typing import Any, Final

API_VERSION: Final = "toolhive.stacklok.dev/v1alpha1"
IMAGE: Final = "ghcr.io/stackloklabs/yardstick/yardstick-server:0.0.2"
TOKEN_URL: Final = "https://oauth.example.com/token"


def _meta(name: str, namespace: str | None, annotations: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def mcpserver(
    name: str,
    *,
    namespace: str | None = None,
    annotations: dict[str, str] | None = None,
    external_auth: str | None = None,
    tool_config: str | None = None,
    defaults: bool = True,
    **spec: Any,
) -> dict[str, Any]:
    """An MCPServer (default: the yardstick image over stdio on port 8080, builtin ``network``
    profile, as upstream's scenarios; ``defaults=False``: only the fields given);
    ``external_auth``/``tool_config`` name the referenced configs."""
    base: dict[str, Any] = (
        {
            "image": IMAGE,
            "transport": "stdio",
            "port": 8080,
            "permissionProfile": {"type": "builtin", "name": "network"},
        }
        if defaults
        else {}
    )
    body: dict[str, Any] = {**base, **spec}
    if external_auth:
        body["externalAuthConfigRef"] = {"name": external_auth}
    if tool_config:
        body["toolConfigRef"] = {"name": tool_config}
    return {
        "apiVersion": API_VERSION,
        "kind": "MCPServer",
        "metadata": _meta(name, namespace, annotations),
        "spec": _present(body),
    }


def extauth(
    name: str,
    *,
    namespace: str | None = None,
    audience: str = "mcp-backend",
    secret: tuple[str, str] | None = ("oauth-test-secret", "client-secret"),
    **token_exchange: Any,
) -> dict[str, Any]:
    """An MCPExternalAuthConfig of type ``tokenExchange``; ``secret`` is the client secret's
    (Secret name, key); other keywords set ``tokenExchange`` fields (``None`` removes one)."""
    te: dict[str, Any] = {"tokenUrl": TOKEN_URL, "clientId": "test-client-id", "audience": audience}
    if secret is not None:
        te["clientSecretRef"] = {"name": secret[0], "key": secret[1]}
    te.update(token_exchange)
    return {
        "apiVersion": API_VERSION,
        "kind": "MCPExternalAuthConfig",
        "metadata": _meta(name, namespace, None),
        "spec": {"type": "tokenExchange", "tokenExchange": _present(te)},
    }


def toolconfig(name: str, *, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """An MCPToolConfig (``toolsFilter=[...]``, ``toolsOverride={...}``)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MCPToolConfig",
        "metadata": _meta(name, namespace, None),
        "spec": _present(spec),
    }


def secret(name: str, data: dict[str, str], *, namespace: str | None = None) -> dict[str, Any]:
    """A Secret with ``stringData``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace, None),
        "stringData": dict(data),
    }


def configmap(name: str, data: dict[str, str], *, namespace: str | None = None) -> dict[str, Any]:
    """A ConfigMap."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace, None),
        "data": dict(data),
    }
