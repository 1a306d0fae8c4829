#!/usr/bin/env python3
"""A demo MCP server on the official MCP Python SDK: the backend of thv's end-to-end tests and demo.

Transports (``--transport`` or ``MCP_TRANSPORT``, as ToolHive sets it for a container):

* ``stdio`` (default): JSON-RPC on stdin/stdout; there is no HTTP header: a token the runner
  hands over in ``params._meta["dev.thv/authorization"]`` (``Bearer <JWT>``) is verified like an
  HTTP one when ``DEMO_MCP_JWKS_URL``/``DEMO_MCP_AUDIENCE`` are set, else no token is seen.
* ``streamable-http``: ``http://MCP_HOST:MCP_PORT/mcp`` (default ``0.0.0.0:8080``). Every request
  must carry ``Authorization: Bearer <JWT>``, verified here: the signature by the key set at
  ``--jwks-url``/``DEMO_MCP_JWKS_URL``, ``aud`` must contain ``--audience``/``DEMO_MCP_AUDIENCE``
  (or one of them: a comma-separated list),
  ``exp`` must lie ahead, and ``iss`` must equal ``--issuer``/``DEMO_MCP_ISSUER`` when given. A
  missing or bad token gets 401. ``--no-auth`` (``DEMO_MCP_NO_AUTH=1``) turns verification off,
  explicitly. ``--token-header``/``DEMO_MCP_TOKEN_HEADER`` names the header whose bearer token is
  verified instead of ``Authorization`` (thv's custom-header strategy keeps the user's token in
  ``Authorization`` and puts the exchanged one there).

Tools:

* ``whoami``: the claims of the token this request carried (``iss``, ``sub``, ``aud``, ``azp``,
  ``scope``, ``exp``; never the token itself), or ``token_seen: false``;
* ``echo``: returns its ``message``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import jwt
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

REPORTED_CLAIMS = ("iss", "sub", "aud", "azp", "scope", "exp")
META_AUTHORIZATION = "dev.thv/authorization"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
TRANSPORTS = ("stdio", "streamable-http")
log = logging.getLogger("demo-mcp")


class JWKSVerifier:
    """Verifies bearer JWTs: signature by a JWKS (fetched from ``jwks_url``, keys cached and
    refetched for an unknown ``kid``), ``aud``, ``exp`` and, when configured, ``iss``."""

    def __init__(self, jwks_url: str, audience: str, issuer: str | None = None) -> None:
        self.audience = [a.strip() for a in audience.split(",") if a.strip()]
        self.issuer = issuer
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=10)

    def decode(self, token: str) -> dict[str, Any]:
        key = self._jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=self.audience,
            issuer=self.issuer,
            leeway=30,
            options={"require": ["exp", "aud"]},
        )
        return claims

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await anyio.to_thread.run_sync(self.decode, token)
        except (jwt.PyJWTError, jwt.PyJWKClientError) as err:
            log.warning("rejected a bearer token: %s", err)
            return None
        scope = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=str(claims.get("azp") or claims.get("client_id") or ""),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=claims.get("exp") if isinstance(claims.get("exp"), int) else None,
            subject=claims.get("sub"),
            claims=claims,
        )


def _token_of(ctx: Context[Any, Any]) -> AccessToken | None:
    token = get_access_token()
    if token is not None:
        return token
    try:  # the HTTP request this tool call came in on, when the transport has one
        request = ctx.request_context.request
        user = request.scope.get("user") if request is not None else None
    except (AttributeError, ValueError):
        return None
    found = getattr(user, "access_token", None)
    return found if isinstance(found, AccessToken) else None


def _bearer(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _meta_token(ctx: Context[Any, Any]) -> str | None:
    """The bearer token a stdio bridge put into the request's ``_meta`` (no headers on stdio)."""
    try:
        meta: Any = ctx.request_context.meta
    except (AttributeError, ValueError):
        return None
    if meta is None:
        return None
    if isinstance(meta, dict):
        return _bearer(meta.get(META_AUTHORIZATION))
    extra = getattr(meta, "model_extra", None) or {}
    return _bearer(extra.get(META_AUTHORIZATION, getattr(meta, META_AUTHORIZATION, None)))


class TokenHeader:
    """ASGI: verify the bearer token of ``header`` instead of ``Authorization`` (moved there)."""

    def __init__(self, app: Any, header: str) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = list(scope["headers"])
            chosen = [v for n, v in headers if n.lower() == self.header]
            rest = [(n, v) for n, v in headers if n.lower() not in (self.header, b"authorization")]
            scope = {**scope, "headers": rest + ([(b"authorization", chosen[-1])] if chosen else [])}
        await self.app(scope, receive, send)


def build_server(
    *,
    jwks_url: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    resource_url: str | None = None,
    stdio_verifier: JWKSVerifier | None = None,
) -> MCPServer[Any]:
    """The demo server; with ``jwks_url`` and ``audience``, HTTP requests need a valid token;
    ``stdio_verifier`` verifies the tokens a stdio bridge hands over in ``_meta``."""
    verifier = auth = None
    if jwks_url:
        if not audience:
            raise ValueError("a JWKS URL needs an audience to check tokens against")
        verifier = JWKSVerifier(jwks_url, audience, issuer)
        parts = urlsplit(jwks_url)
        auth = AuthSettings(
            issuer_url=issuer or f"{parts.scheme}://{parts.netloc}",  # type: ignore[arg-type]
            resource_server_url=resource_url,  # type: ignore[arg-type]
            validate_token_resource=False,  # the verifier checks `aud` itself
        )
    server: MCPServer[Any] = MCPServer(
        "demo-mcp",
        instructions="A demo MCP server: whoami reports the bearer token's claims, echo echoes.",
        token_verifier=verifier,
        auth=auth,
    )

    @server.tool()
    def whoami(ctx: Context[Any, Any]) -> dict[str, Any]:
        """Report the claims of the bearer token this request carried (never the token)."""
        token = _token_of(ctx)
        claims: dict[str, Any] | None = (token.claims or {}) if token is not None else None
        if claims is None and stdio_verifier is not None and (raw := _meta_token(ctx)):
            try:
                claims = stdio_verifier.decode(raw)
            except (jwt.PyJWTError, jwt.PyJWKClientError) as err:
                log.warning("rejected the token handed over in _meta: %s", err)
                return {"token_seen": True, "token_valid": False}
        if claims is None:
            return {"token_seen": False}
        return {"token_seen": True, **{k: claims[k] for k in REPORTED_CLAIMS if k in claims}}

    @server.tool()
    def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    return server


def http_app(server: MCPServer[Any]) -> Any:
    """The streamable-HTTP ASGI app at ``/mcp``; any Host header is accepted (it is reached by
    Service names and pod IPs, not only localhost)."""
    return server.streamable_http_app(
        host="0.0.0.0",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--transport", choices=TRANSPORTS, default=env.get("MCP_TRANSPORT", "stdio"))
    p.add_argument("--host", default=env.get("MCP_HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(env.get("MCP_PORT") or env.get("FASTMCP_PORT") or 8080))
    p.add_argument("--jwks-url", default=env.get("DEMO_MCP_JWKS_URL"))
    p.add_argument("--audience", default=env.get("DEMO_MCP_AUDIENCE"))
    p.add_argument("--issuer", default=env.get("DEMO_MCP_ISSUER") or None)
    p.add_argument("--resource-url", default=env.get("DEMO_MCP_RESOURCE_URL") or None)
    p.add_argument("--no-auth", action="store_true", default=env.get("DEMO_MCP_NO_AUTH") == "1")
    p.add_argument("--token-header", default=env.get("DEMO_MCP_TOKEN_HEADER") or None)
    args = p.parse_args(argv)
    if args.transport == "streamable-http" and not args.no_auth and not (args.jwks_url and args.audience):
        p.error("streamable-http verifies tokens: give --jwks-url and --audience (or --no-auth)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if args.transport == "stdio":
        stdio_verifier = None
        if args.jwks_url and args.audience and not args.no_auth:
            stdio_verifier = JWKSVerifier(args.jwks_url, args.audience, args.issuer)
        anyio.run(build_server(stdio_verifier=stdio_verifier).run_stdio_async)
        return 0
    import uvicorn

    server = build_server(
        jwks_url=None if args.no_auth else args.jwks_url,
        audience=args.audience,
        issuer=args.issuer,
        resource_url=args.resource_url,
    )
    log.info("streamable-http on %s:%d/mcp (auth %s)", args.host, args.port, "off" if args.no_auth else "on")
    app = http_app(server)
    if args.token_header:
        app = TokenHeader(app, args.token_header)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
