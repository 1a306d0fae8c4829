"""RFC 8693 client: one token-exchange request, with upstream ToolHive's request shape.

Request (form POST to ``token_url``): ``grant_type`` token-exchange, ``subject_token``,
``subject_token_type`` (default access-token URN), ``requested_token_type`` = access-token URN
(upstream's middleware always asks for an access token), ``audience`` when set, ``scope`` as the
space-joined scopes when any. Client authentication is ``client_secret_basic`` (form-urlencoded
id and secret), sent only when both the client id and the secret are non-empty — as upstream;
``client_id`` is never put in the body.

Failures are classified into :class:`ExchangeError` kinds, each with the HTTP status the proxy
answers with. Nothing from the provider's body, the subject token or the secret ever goes into an
exception message, a log line or a span attribute — only the (validated) OAuth error code and the
provider's HTTP status.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from typing import Any, Final, Literal
from urllib.parse import quote_plus, urlsplit

import httpx
import msgspec
from opentelemetry import trace

from thv.proxy.cache import DEFAULT_SKEW_SECONDS, CachedToken, cache_ttl
from thv.proxy.config import GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN, TokenExchangeSettings

log = logging.getLogger("thv.proxy.exchange")
tracer = trace.get_tracer("thv.proxy")

MAX_RESPONSE_BYTES: Final = 1 << 20  # upstream reads at most 1 MiB too
DEFAULT_TIMEOUT: Final = 10.0
# provider error codes that blame the proxy's own client/configuration, not the caller's token
CLIENT_SIDE_ERRORS: Final = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type"})
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: safe to put in a header

ErrorKind = Literal["rejected", "misconfigured", "unavailable", "timeout", "bad_response"]
STATUS_FOR_KIND: Final[dict[str, int]] = {
    "rejected": 401,  # the provider refused the caller's token (invalid_grant, invalid_request, ...)
    "misconfigured": 502,  # the provider refused the proxy's client (invalid_client, ...)
    "bad_response": 502,  # garbage: not JSON, missing fields, 2xx with "error", 3xx, 4xx without OAuth error
    "unavailable": 503,  # connection refused/reset, 5xx, 429
    "timeout": 503,  # no answer within the timeout
}


class ExchangeError(Exception):
    """A failed exchange; ``str()`` is safe to log (no token, secret or provider body)."""

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        *,
        provider_status: int | None = None,
        oauth_error: str | None = None,
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.provider_status = provider_status
        self.oauth_error = oauth_error
        super().__init__(self.describe())

    @property
    def status(self) -> int:
        return STATUS_FOR_KIND[self.kind]

    def describe(self) -> str:
        parts = [f"kind={self.kind}", f"reason={self.reason!r}"]
        if self.provider_status is not None:
            parts.append(f"provider_status={self.provider_status}")
        if self.oauth_error is not None:
            parts.append(f"oauth_error={self.oauth_error}")
        return " ".join(parts)


class _Success(msgspec.Struct):
    access_token: str = ""
    token_type: str = ""
    issued_token_type: str = ""
    expires_in: Any = None
    error: Any = None


class _Failure(msgspec.Struct):
    error: Any = None


def safe_error_code(value: object) -> str | None:
    """An OAuth ``error`` value if it looks like a code (never free text from the provider)."""
    return value if isinstance(value, str) and _ERROR_CODE.match(value) else None


def _expires_in(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # some providers send a string
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def basic_auth(client_id: str, secret: str) -> str:
    """``client_secret_basic`` header value (RFC 6749 §2.3.1: form-urlencode, then base64)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class TokenExchanger:
    """Performs exchanges for one :class:`TokenExchangeSettings`."""

    def __init__(
        self,
        settings: TokenExchangeSettings,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        skew: float = DEFAULT_SKEW_SECONDS,
    ) -> None:
        self.settings = settings
        self.skew = skew
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=True
        )
        self._timeout = timeout
        self.calls = 0  # number of requests sent to the token endpoint
        url = urlsplit(settings.token_url)
        self._span_attrs: dict[str, str | int] = {
            "server.address": url.hostname or "",
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "url.path": url.path,
            "thv.token_exchange.audience": settings.audience,
            "thv.token_exchange.client_id": settings.client_id,
        }
        if settings.client_id and settings.client_secret is None:
            log.warning(
                "token exchange client_id is set but no client secret (set $%s); "
                "requests go without client authentication",
                "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET",
            )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def _request_parts(self, subject_token: str) -> tuple[dict[str, str], dict[str, str]]:
        s = self.settings
        form = {
            "grant_type": GRANT_TYPE_TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": s.subject_token_type,
            "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        }
        if s.audience:
            form["audience"] = s.audience
        if s.scopes:
            form["scope"] = " ".join(s.scopes)
        headers = {"Accept": "application/json"}
        if s.client_id and s.client_secret is not None and s.client_secret.reveal():
            headers["Authorization"] = basic_auth(s.client_id, s.client_secret.reveal())
        return form, headers

    async def exchange(self, subject_token: str) -> CachedToken:
        """Exchange ``subject_token``; raises :class:`ExchangeError`."""
        with tracer.start_as_current_span(
            "thv.proxy.token_exchange", kind=trace.SpanKind.CLIENT, attributes=self._span_attrs
        ) as span:
            started = time.monotonic()
            try:
                token, expires_in = await self._exchange(subject_token)
            except ExchangeError as exc:
                span.set_status(trace.StatusCode.ERROR, exc.kind)
                span.set_attribute("error.type", exc.oauth_error or exc.kind)
                span.set_attribute("thv.token_exchange.outcome", exc.kind)
                if exc.provider_status is not None:
                    span.set_attribute("http.response.status_code", exc.provider_status)
                log.warning(
                    "token exchange failed %s duration_ms=%.1f",
                    exc.describe(),
                    (time.monotonic() - started) * 1000,
                )
                raise
            ttl = cache_ttl(expires_in, subject_token, skew=self.skew)
            span.set_attribute("thv.token_exchange.outcome", "ok")
            span.set_attribute("http.response.status_code", 200)
            if expires_in is not None:
                span.set_attribute("thv.token_exchange.expires_in", expires_in)
            log.info(
                "token exchange ok audience=%s expires_in=%s duration_ms=%.1f",
                self.settings.audience,
                expires_in,
                (time.monotonic() - started) * 1000,
            )
            return CachedToken(
                access_token=token.access_token,
                token_type=token.token_type,
                expires_at=time.monotonic() + ttl if ttl > 0 else None,
            )

    async def _exchange(self, subject_token: str) -> tuple[_Success, float | None]:
        form, headers = self._request_parts(subject_token)
        self.calls += 1
        try:
            async with self._client.stream(
                "POST", self.settings.token_url, data=form, headers=headers, timeout=self._timeout
            ) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise ExchangeError(
                            "bad_response", "response larger than 1 MiB", provider_status=resp.status_code
                        )
                status = resp.status_code
        except httpx.TimeoutException:
            raise ExchangeError("timeout", f"no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ExchangeError("unavailable", f"transport error {type(exc).__name__}") from None
        return self._parse(status, bytes(body))

    @staticmethod
    def _parse(status: int, body: bytes) -> tuple[_Success, float | None]:
        if 200 <= status < 300:
            try:
                ok = msgspec.json.decode(body, type=_Success)
            except msgspec.MsgspecError:
                raise ExchangeError(
                    "bad_response", "success body is not a JSON object", provider_status=status
                ) from None
            if ok.error is not None:
                raise ExchangeError(
                    "bad_response",
                    "success status with an error body",
                    provider_status=status,
                    oauth_error=safe_error_code(ok.error),
                )
            missing = [
                f
                for f in ("access_token", "token_type", "issued_token_type")
                if not isinstance(getattr(ok, f), str) or not getattr(ok, f)
            ]
            if missing:
                raise ExchangeError("bad_response", "missing " + ", ".join(missing), provider_status=status)
            if not _TOKEN_CHARS.match(ok.access_token):
                raise ExchangeError(
                    "bad_response", "access_token has characters unusable in a header", provider_status=status
                )
            return ok, _expires_in(ok.expires_in)
        if status == 429 or status >= 500:
            raise ExchangeError("unavailable", "provider busy or failing", provider_status=status)
        if 400 <= status < 500:
            try:
                code = safe_error_code(msgspec.json.decode(body, type=_Failure).error)
            except msgspec.MsgspecError:
                code = None
            if code is None:
                raise ExchangeError(
                    "bad_response", "error status without an OAuth error", provider_status=status
                )
            kind: ErrorKind = "misconfigured" if code in CLIENT_SIDE_ERRORS else "rejected"
            raise ExchangeError(
                kind, "provider refused the exchange", provider_status=status, oauth_error=code
            )
        raise ExchangeError("bad_response", "unexpected status", provider_status=status)
