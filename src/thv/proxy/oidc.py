"""Incoming-token validation: JWT signature against the issuer's JWKS, ``iss``, ``aud``, ``exp``.

Mirrors what upstream's ``oidc_config`` asks for (``Issuer``, ``Audience``, ``JWKSURL``,
``CACertPath``, ``AuthTokenFile``). When ``JWKSURL`` is empty the JWKS URL comes from the issuer's
discovery document. Keys are cached; an unknown ``kid`` triggers a refetch at most every
``min_refresh`` seconds (concurrent refetches are deduplicated). Only asymmetric algorithms are
accepted. Token introspection (opaque tokens) is not supported.

A token that passed is remembered (by its SHA-256, never the token itself) with its claims until
its ``exp`` (plus the leeway the decode allowed), until the key set is next fetched (a rotation
cannot leave a verdict that outlives its key), or until ``max_verified`` other tokens push it out:
a client sends the same token on every request, and the RSA verification and the claim checks
would otherwise be repeated for each (the data plane's hot path; upstream's Go validator pays it
per request too, at Go's speed). Failures are never remembered.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any, Final

import httpx
import jwt
from opentelemetry import trace

from thv.proxy.cache import SingleFlight
from thv.proxy.config import OIDCSettings

log = logging.getLogger("thv.proxy.oidc")
tracer = trace.get_tracer("thv.proxy")

ALLOWED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class InvalidToken(Exception):
    """The token is not acceptable; the message is a fixed, token-free reason."""


class ValidatorUnavailable(Exception):
    """The JWKS or discovery document could not be fetched."""


class OIDCValidator:
    def __init__(
        self,
        settings: OIDCSettings,
        *,
        client: httpx.AsyncClient | None = None,
        leeway: float = 30.0,
        keys_ttl: float = 600.0,
        min_refresh: float = 10.0,
        timeout: float = 10.0,
        max_verified: int = 10_000,
    ) -> None:
        self.settings = settings
        self.leeway = leeway
        self.max_verified = max_verified
        # sha256(token) -> (claims, wall-clock deadline: exp + leeway); insertion-ordered (FIFO)
        self._verified: dict[bytes, tuple[Mapping[str, Any], float]] = {}
        self.keys_ttl = keys_ttl
        self.min_refresh = min_refresh
        self._own_client = client is None
        if client is None:
            verify: ssl.SSLContext | bool = True
            if settings.ca_cert_path:
                verify = ssl.create_default_context(cafile=settings.ca_cert_path)
            client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), verify=verify, follow_redirects=True)
        self._client = client
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._flight: SingleFlight[None] = SingleFlight()
        self._jwks_url = settings.jwks_url

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.settings.auth_token_file:
            try:
                with open(self.settings.auth_token_file, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except OSError as exc:
                raise ValidatorUnavailable(f"cannot read the JWKS auth token file: {exc.strerror}") from None
            if token:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _get_json(self, url: str) -> Mapping[str, Any]:
        try:
            resp = await self._client.get(url, headers=self._headers())
        except httpx.HTTPError as exc:
            raise ValidatorUnavailable(f"fetching {url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise ValidatorUnavailable(f"fetching {url}: HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise ValidatorUnavailable(f"fetching {url}: not JSON") from None
        if not isinstance(data, dict):
            raise ValidatorUnavailable(f"fetching {url}: not a JSON object")
        return data

    async def _refresh(self) -> None:
        with tracer.start_as_current_span("thv.proxy.jwks_fetch", kind=trace.SpanKind.CLIENT):
            if self._jwks_url is None:
                issuer = self.settings.issuer.rstrip("/")
                doc = await self._get_json(f"{issuer}/.well-known/openid-configuration")
                if doc.get("issuer") != self.settings.issuer:
                    raise ValidatorUnavailable("discovery document names another issuer")
                jwks_uri = doc.get("jwks_uri")
                if not isinstance(jwks_uri, str) or not jwks_uri:
                    raise ValidatorUnavailable("discovery document has no jwks_uri")
                self._jwks_url = jwks_uri
            jwks = await self._get_json(self._jwks_url)
            keys: dict[str, jwt.PyJWK] = {}
            for index, jwk in enumerate(jwks.get("keys") or []):
                if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                    continue
                try:
                    key = jwt.PyJWK(jwk)
                except jwt.PyJWTError:
                    continue  # unsupported key type or algorithm
                keys[str(jwk.get("kid", f"#{index}"))] = key
            self._keys = keys
            self._verified.clear()  # verdicts never outlive the key set they were checked against
            self._fetched_at = time.monotonic()
            log.info("jwks loaded keys=%d url=%s", len(keys), self._jwks_url)

    async def _key_for(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        stale = now - self._fetched_at > self.keys_ttl
        unknown = (kid not in self._keys) if kid is not None else not self._keys
        if stale or (unknown and now - self._fetched_at > self.min_refresh):
            await self._flight.do("jwks", self._refresh)
        if kid is not None and kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise InvalidToken("no matching signing key")

    async def validate(self, token: str) -> Mapping[str, Any]:
        """The verified claims; raises :class:`InvalidToken` or :class:`ValidatorUnavailable`.

        The claims of a remembered token are shared between requests: treat them as read-only."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.time() < known[1] and time.monotonic() - self._fetched_at <= self.keys_ttl:
                return known[0]
            del self._verified[digest]
        claims = await self._validate(token)
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            if len(self._verified) >= self.max_verified:
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = (claims, float(exp) + self.leeway)
        return claims

    async def _validate(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        kid = header.get("kid")
        key = await self._key_for(kid if isinstance(kid, str) else None)
        audience = self.settings.audience
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=self.settings.issuer,
                audience=audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss"], "verify_aud": audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience mismatch") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token issuer mismatch") from None
        except jwt.PyJWTError:
            raise InvalidToken("token signature or claims invalid") from None
        return claims
