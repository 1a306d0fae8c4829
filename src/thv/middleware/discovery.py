"""OAuth 2.0 Protected Resource Metadata (RFC 9728) and the proxy's own 401s.

* ``GET /.well-known/oauth-protected-resource`` (and the path-suffixed form
  ``/.well-known/oauth-protected-resource/<path>``) answers without a token, as upstream's
  ``NewAuthInfoHandler``: ``resource`` (the configured resource URL), ``authorization_servers``
  (the OIDC issuer), ``bearer_methods_supported: ["header"]``, ``scopes_supported`` (``openid``);
  CORS headers for browser clients, ``OPTIONS`` → 204. Without a resource URL → 404.
* :func:`www_authenticate` — ``Bearer realm=…, resource_metadata="<RFC 9728 §3.1 URL>"[, error…]``.
* :class:`Backend401Guard` — a backend's own 401 is replaced by the proxy's 401 (fixed JSON body,
  the proxy's ``WWW-Authenticate``), so the backend's internal address (e.g. in its
  ``resource_metadata``) never reaches the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import msgspec

from thv.proxy.asgi import Message, Scope, Send, send_json

__all__ = [
    "WELL_KNOWN_PATH",
    "Backend401Guard",
    "Discovery",
    "metadata_url",
    "with_resource_metadata",
    "www_authenticate",
]

WELL_KNOWN_PATH: Final = "/.well-known/oauth-protected-resource"


def metadata_url(resource_url: str) -> str | None:
    """RFC 9728 §3.1: the well-known path goes between the host and the resource's path."""
    parts = urlsplit(resource_url)
    if not parts.scheme or not parts.netloc:
        return None
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN_PATH}{path}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def www_authenticate(
    realm: str, resource_url: str | None, error: str | None = None, description: str | None = None
) -> tuple[bytes, bytes]:
    parts = [f'realm="{_quote(realm)}"']
    metadata = metadata_url(resource_url) if resource_url else None
    if metadata:
        parts.append(f'resource_metadata="{_quote(metadata)}"')
    if error:
        parts.append(f'error="{_quote(error)}"')
        if description:
            parts.append(f'error_description="{_quote(description)}"')
    return (b"www-authenticate", ("Bearer " + ", ".join(parts)).encode())


@dataclass(frozen=True, slots=True)
class Discovery:
    resource_url: str | None
    issuer: str | None
    scopes: tuple[str, ...] = ()

    @staticmethod
    def matches(path: str) -> bool:
        return path == WELL_KNOWN_PATH or path.startswith(WELL_KNOWN_PATH + "/")

    async def serve(self, scope: Scope, send: Send) -> int:
        origin = "*"
        for name, value in scope["headers"]:
            if name.lower() == b"origin":
                origin = value.decode("latin-1")
        cors = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"GET, OPTIONS"),
            (b"access-control-allow-headers", b"mcp-protocol-version, Content-Type, Authorization"),
            (b"access-control-max-age", b"86400"),
        ]
        method = scope["method"]
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return 204
        if method not in ("GET", "HEAD"):
            await send_json(send, 405, {"error": "method_not_allowed"}, [(b"allow", b"GET, OPTIONS"), *cors])
            return 405
        if not self.resource_url or not self.issuer:
            await send_json(send, 404, {"error": "not_found"}, cors)
            return 404
        body = msgspec.json.encode(
            {
                "resource": self.resource_url,
                "authorization_servers": [self.issuer],
                "bearer_methods_supported": ["header"],
                "scopes_supported": list(self.scopes) or ["openid"],
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *cors,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else body, "more_body": False}
        )
        return 200


class Backend401Guard:
    """Wraps ``send``: a 401 from the backend becomes the proxy's own 401 answer."""

    def __init__(self, send: Send, realm: str, resource_url: str | None) -> None:
        self._send = send
        self._realm = realm
        self._resource_url = resource_url
        self._swallow = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message.get("status") == 401:
            self._swallow = True
            description = "the MCP server refused the credentials"
            await send_json(
                self._send,
                401,
                {"error": "invalid_token", "error_description": description},
                [www_authenticate(self._realm, self._resource_url, "invalid_token", description)],
            )
            return
        if self._swallow:
            return
        await self._send(message)


def with_resource_metadata(send: Send, resource_url: str | None) -> Send:
    """``send`` adding ``resource_metadata`` to the ``WWW-Authenticate`` of every 401 the proxy
    itself answers (the header is otherwise kept as written)."""
    metadata = metadata_url(resource_url) if resource_url else None
    if metadata is None:
        return send
    param = f', resource_metadata="{_quote(metadata)}"'.encode()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message.get("status") == 401:
            headers = []
            for name, value in message.get("headers", []):
                if name.lower() == b"www-authenticate" and b"resource_metadata=" not in value:
                    scheme, _, rest = value.partition(b" ")
                    first, sep, others = rest.partition(b", ")
                    value = scheme + b" " + first + param + (sep + others if sep else b"")
                headers.append((name, value))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
