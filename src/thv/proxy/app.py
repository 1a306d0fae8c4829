"""The ``thv proxy`` ASGI application: validate → exchange → forward.

Per HTTP request:

1. when incoming validation or token exchange is configured, the ``Authorization: Bearer``
   token is required — no token ⇒ ``401`` with ``WWW-Authenticate: Bearer realm="thv"``
   (upstream forwards such requests unchanged; thv refuses them);
2. optional OIDC validation (:mod:`thv.proxy.oidc`) ⇒ ``401 invalid_token`` or ``503``;
3. token exchange through the cache (:mod:`thv.proxy.cache`, :mod:`thv.proxy.exchange`) ⇒
   ``401`` (token refused), ``502`` (proxy client refused / garbage answer) or ``503``
   (provider down, failing or timing out);
4. injection: ``replace`` sets ``Authorization: Bearer <new>``; ``custom`` sets
   ``<header>: Bearer <new>`` and keeps the original ``Authorization``;
5. streaming forward (:mod:`thv.proxy.forward`) ⇒ ``502``/``504`` if the MCP server cannot be
   reached. An upstream ``401`` evicts the cached exchanged token.

One OTel span per request (``thv.proxy.request``, SERVER) with a child per exchange; one log
line per request. Tokens, secrets and provider bodies appear in neither.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx
from opentelemetry import propagate, trace

# --- MCP middleware hook (issue 15, thv.middleware) ---
from thv.middleware.discovery import Backend401Guard, Discovery, with_resource_metadata
from thv.proxy.asgi import Receive, Scope, Send, send_json
from thv.proxy.cache import CachedToken, TokenCache, key_function
from thv.proxy.config import ConfigError, ProxyConfig, TokenExchangeSettings
from thv.proxy.exchange import ExchangeError, TokenExchanger
from thv.proxy.forward import ClientDisconnected, Forwarder, RawForwarder, UpstreamError

if TYPE_CHECKING:
    from thv.middleware.chain import McpChain
# --- end MCP middleware hook ---

log = logging.getLogger("thv.proxy")
tracer = trace.get_tracer("thv.proxy")

REALM: Final = "thv"
# the headers the default propagators (W3C trace context, baggage) read
_TRACE_HEADERS: Final = frozenset({b"traceparent", b"tracestate", b"baggage"})
CLIENT_CLOSED: Final = 499  # logged status when the client went away mid-request


class TokenValidator(Protocol):
    """What the app needs from an incoming-token validator (see :class:`thv.proxy.oidc.OIDCValidator`)."""

    async def validate(self, token: str) -> Mapping[str, Any]: ...

    async def aclose(self) -> None: ...


def _spans_recorded() -> bool:
    """False when the installed SDK tracer provider has no span processor: a span would be
    built, timed and thrown away (~50-150 µs per request on this machine), so the request
    runs without one. Checked per request (a processor may be added at any time); any other
    provider (no-op, or an SDK whose internals differ) counts as recording."""
    active = getattr(trace.get_tracer_provider(), "_active_span_processor", None)
    processors = getattr(active, "_span_processors", None)
    return processors is None or bool(processors)


def extract_bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer token of the single ``Authorization`` header, else ``None``."""
    values = [v for n, v in headers if n.lower() == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, token = values[0].decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c in token for c in ' \t,"\\'):
        return None
    return token


def inject_token(
    headers: list[tuple[bytes, bytes]], settings: TokenExchangeSettings, token: str
) -> list[tuple[bytes, bytes]]:
    """Headers with the exchanged token placed per ``header_strategy``."""
    value = b"Bearer " + token.encode("ascii")
    if settings.header_strategy == "custom" and settings.external_token_header_name:
        name = settings.external_token_header_name.lower().encode("ascii")
    else:
        name = b"authorization"
    return [(n, v) for n, v in headers if n.lower() != name] + [(name, value)]


def _www_authenticate(error: str | None = None, description: str | None = None) -> tuple[bytes, bytes]:
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return (b"www-authenticate", value.encode())


def _log_request(scope: Scope, status: int, exchange: str, started: float) -> None:
    log.info(
        "request method=%s path=%s status=%d exchange=%s duration_ms=%.1f",
        scope["method"],
        scope["path"],
        status,
        exchange,
        (time.monotonic() - started) * 1000,
    )


class ProxyApp:
    """ASGI app; build it with :func:`build_app` or directly with injected collaborators."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        upstream_client: httpx.AsyncClient | None = None,
        exchanger: TokenExchanger | None = None,
        validator: TokenValidator | None = None,
        cache: TokenCache | None = None,
        exchange_timeout: float | None = None,
        cache_skew: float | None = None,
        cache_enabled: bool | None = None,
        mcp: McpChain | None = None,
    ) -> None:
        """Collaborators may be injected (tests, benchmarks); the keyword settings override the
        config's ``exchange_timeout``/``cache_skew``/``cache_enabled``."""
        if config.target_url is None:
            raise ConfigError("no target: give --target (or target_port in the runconfig)")
        self.config = config
        # the default: pooled HTTP/1.1 on asyncio streams; injected httpx clients keep working
        self.forwarder: Forwarder | RawForwarder = (
            Forwarder(upstream_client, config.target_url)
            if upstream_client is not None
            else RawForwarder(config.target_url)
        )
        if exchange_timeout is None:
            exchange_timeout = config.exchange_timeout
        if cache_skew is None:
            cache_skew = config.cache_skew
        if cache_enabled is None:
            cache_enabled = config.cache_enabled
        te = config.token_exchange
        self.exchanger = exchanger
        if self.exchanger is None and te is not None:
            self.exchanger = TokenExchanger(te, timeout=exchange_timeout, skew=cache_skew)
        self.validator: TokenValidator | None = validator
        if self.validator is None and config.oidc is not None:
            from thv.proxy.oidc import OIDCValidator  # needs pyjwt[crypto]

            self.validator = OIDCValidator(config.oidc)
        self.cache = cache or TokenCache(skew=cache_skew, enabled=cache_enabled)
        self._cache_key = key_function(self.exchanger.settings) if self.exchanger is not None else None
        self._server_name = config.name or ""
        # MCP middleware hook: RFC 9728 discovery and the chain after auth + exchange
        self.mcp = mcp
        oidc = config.oidc
        self.resource_url = oidc.resource_url if oidc is not None else None
        self.discovery = Discovery(self.resource_url, oidc.issuer if oidc is not None else None)

    async def aclose(self) -> None:
        if self.exchanger is not None:
            await self.exchanger.aclose()
        if self.validator is not None:
            await self.validator.aclose()
        await self.cache.close()
        await self.forwarder.aclose()
        if self.mcp is not None:
            self.mcp.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        if not _spans_recorded():
            status, exchange = await self._process(scope, receive, send, headers)
            _log_request(scope, status, exchange, started)
            return
        carrier = {
            n.decode("latin-1").lower(): v.decode("latin-1")
            for n, v in headers
            if n.lower() in _TRACE_HEADERS
        }
        parent = propagate.extract(carrier) if carrier else None  # None: the current context
        attributes: dict[str, str] = {"http.request.method": scope["method"], "url.path": scope["path"]}
        if self._server_name:
            attributes["thv.mcp_server"] = self._server_name
        with tracer.start_as_current_span(
            "thv.proxy.request", context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        ) as span:
            status, exchange = await self._process(scope, receive, send, headers)
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("thv.token_exchange.cache", exchange)
            if status >= 500:
                span.set_status(trace.StatusCode.ERROR)
        _log_request(scope, status, exchange, started)

    async def _process(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, str]:
        exchange_outcome = "none"
        key: str | None = None
        # MCP middleware hook: unauthenticated discovery/metrics; resource_metadata on every 401
        if Discovery.matches(scope["path"]):
            return await self.discovery.serve(scope, send), exchange_outcome
        if self.mcp is not None and self.mcp.serves(scope):
            return await self.mcp.serve(scope, send), exchange_outcome
        send = with_resource_metadata(send, self.resource_url)
        claims: Mapping[str, Any] | None = None
        if self.validator is not None or self.exchanger is not None:
            token = extract_bearer(headers)
            if token is None:
                await send_json(
                    send,
                    401,
                    {"error": "invalid_request", "error_description": "a bearer token is required"},
                    [_www_authenticate()],
                )
                return 401, exchange_outcome
            if self.validator is not None:
                denied, claims = await self._validate(self.validator, send, token)
                if denied:
                    return denied, exchange_outcome
            if self.exchanger is not None and self._cache_key is not None:
                settings = self.exchanger.settings
                key = self._cache_key(token)
                exchanger = self.exchanger
                subject = token

                async def do_exchange() -> CachedToken:
                    return await exchanger.exchange(subject)

                try:
                    exchanged, exchange_outcome = await self.cache.get_or_exchange(key, do_exchange)
                except ExchangeError as exc:
                    await self._exchange_failed(send, exc)
                    return exc.status, "error"
                headers = inject_token(headers, settings, exchanged.access_token)
        try:
            guarded = Backend401Guard(send, REALM, self.resource_url)  # MCP middleware hook
            if self.mcp is not None:
                status = await self.mcp.handle(
                    scope, receive, guarded, headers, claims, self.forwarder.forward
                )
            else:
                status = await self.forwarder.forward(scope, receive, guarded, headers)
        except UpstreamError as exc:
            log.warning("upstream error status=%d reason=%s", exc.status, exc.reason)
            await send_json(send, exc.status, {"error": "bad_gateway", "error_description": exc.reason})
            return exc.status, exchange_outcome
        except ClientDisconnected:
            return CLIENT_CLOSED, exchange_outcome
        if status == 401 and key is not None:
            await self.cache.invalidate(key)  # the MCP server refused the exchanged token
        return status, exchange_outcome

    @staticmethod
    async def _validate(
        validator: TokenValidator, send: Send, token: str
    ) -> tuple[int, Mapping[str, Any] | None]:
        from thv.proxy.oidc import InvalidToken, ValidatorUnavailable

        try:
            claims = await validator.validate(token)
        except InvalidToken as exc:
            log.info("incoming token rejected reason=%s", exc)
            await send_json(
                send,
                401,
                {"error": "invalid_token", "error_description": str(exc)},
                [_www_authenticate("invalid_token", str(exc))],
            )
            return 401, None
        except ValidatorUnavailable as exc:
            log.warning("incoming token validation unavailable reason=%s", exc)
            await send_json(
                send,
                503,
                {"error": "temporarily_unavailable", "error_description": "token validation unavailable"},
                [(b"retry-after", b"5")],
            )
            return 503, None
        return 0, claims

    @staticmethod
    async def _exchange_failed(send: Send, exc: ExchangeError) -> None:
        if exc.status == 401:
            description = "token exchange rejected the bearer token"
            await send_json(
                send,
                401,
                {"error": "invalid_token", "error_description": description},
                [_www_authenticate("invalid_token", description)],
            )
        elif exc.status == 503:
            await send_json(
                send,
                503,
                {"error": "temporarily_unavailable", "error_description": "token exchange unavailable"},
                [(b"retry-after", b"5")],
            )
        else:
            await send_json(send, 502, {"error": "bad_gateway", "error_description": "token exchange failed"})


def build_app(config: ProxyConfig, **kwargs: Any) -> ProxyApp:
    """The ASGI app for ``config`` (keyword arguments as for :class:`ProxyApp`)."""
    return ProxyApp(config, **kwargs)
