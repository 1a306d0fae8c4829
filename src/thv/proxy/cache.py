"""Exchanged-token cache (aiocache in memory) with single-flight deduplication.

* The key is a SHA-256 over every input that changes the exchange result — subject token,
  subject token type, audience, scopes, token URL, client id — so the raw subject token is never
  stored as a key (the value, the exchanged token, lives only in process memory).
* An entry lives until ``expires_in`` minus a skew, capped by the subject token's own ``exp``
  (read without verification, used only to shorten the lifetime).
* Concurrent misses for one key share ONE exchange (:class:`SingleFlight`); failures are not cached.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from json.encoder import encode_basestring_ascii
from typing import Final, Generic, Literal, TypeVar

import msgspec
from aiocache import SimpleMemoryCache

from thv.proxy.config import TokenExchangeSettings

T = TypeVar("T")
DEFAULT_SKEW_SECONDS: Final = 30.0
DEFAULT_MAX_ENTRIES: Final = 10_000
Outcome = Literal["hit", "miss", "shared"]


class CachedToken(msgspec.Struct, frozen=True):
    """An exchanged token and its absolute expiry (``time.monotonic()`` based)."""

    access_token: str
    token_type: str
    expires_at: float | None  # monotonic deadline of the cache entry; None = not cacheable

    def __repr__(self) -> str:  # never print the token
        return f"CachedToken(token_type={self.token_type!r}, expires_at={self.expires_at!r})"


def cache_key(subject_token: str, settings: TokenExchangeSettings) -> str:
    """SHA-256 (hex) of the exchange inputs; unambiguous because the parts are JSON-encoded."""
    return key_function(settings)(subject_token)


def key_function(settings: TokenExchangeSettings) -> Callable[[str], str]:
    """``cache_key`` with ``settings`` fixed: the settings part of the material is encoded once
    (the request's hot path then encodes only the token). Same keys as :func:`cache_key`."""
    suffix = json.dumps(
        [
            settings.subject_token_type,
            settings.audience,
            list(settings.scopes),
            settings.token_url,
            settings.client_id,
        ],
        separators=(",", ":"),
    )[1:]
    sha256 = hashlib.sha256

    def key(subject_token: str) -> str:
        return sha256(("[" + encode_basestring_ascii(subject_token) + "," + suffix).encode()).hexdigest()

    return key


def unverified_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT without verifying it (``None`` if not a JWT or no exp)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def cache_ttl(
    expires_in: float | None,
    subject_token: str,
    *,
    skew: float = DEFAULT_SKEW_SECONDS,
    default_lifetime: float = 300.0,
    now: float | None = None,
) -> float:
    """Seconds to keep an exchanged token: min(expires_in, subject exp - now) - skew (≤ 0: don't)."""
    lifetime = default_lifetime if expires_in is None else expires_in
    exp = unverified_exp(subject_token)
    if exp is not None:
        lifetime = min(lifetime, exp - (time.time() if now is None else now))
    return lifetime - skew


class SingleFlight(Generic[T]):
    """At most one in-flight call per key; other callers await the same result.

    The shared call runs in its own task: a caller that is cancelled does not cancel it for the
    others. Exceptions reach every waiter and are not remembered.
    """

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` (or join the running call); returns ``(result, shared)``."""
        task = self._inflight.get(key)
        shared = task is not None
        if task is None:

            async def run() -> T:
                return await fn()

            task = asyncio.ensure_future(run())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._forget(key, t))
        return await asyncio.shield(task), shared

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: no "exception was never retrieved" if all waiters left


class TokenCache:
    """Cache of exchanged tokens in front of an exchange function."""

    def __init__(
        self,
        *,
        skew: float = DEFAULT_SKEW_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        enabled: bool = True,
    ) -> None:
        self.skew = skew
        self.max_entries = max_entries
        self.enabled = enabled
        self._cache = SimpleMemoryCache(timeout=None)
        self._flight: SingleFlight[CachedToken] = SingleFlight()

    async def get_or_exchange(
        self, key: str, exchange: Callable[[], Awaitable[CachedToken]]
    ) -> tuple[CachedToken, Outcome]:
        """The cached token for ``key``, else the result of one (shared) ``exchange()`` call.

        Disabled: every call exchanges, without sharing (upstream ToolHive's behaviour)."""
        if not self.enabled:
            return await exchange(), "miss"
        hit = await self._lookup(key)
        if hit is not None:
            return hit, "hit"

        async def fill() -> CachedToken:
            again = await self._lookup(key)  # a flight may have just filled it
            if again is not None:
                return again
            token = await exchange()
            await self._store(key, token)
            return token

        token, shared = await self._flight.do(key, fill)
        return token, "shared" if shared else "miss"

    async def invalidate(self, key: str) -> None:
        await self._cache.delete(key)

    async def size(self) -> int:
        return len(self._cache._cache)

    async def close(self) -> None:
        await self._cache.clear()
        await self._cache.close()

    async def _lookup(self, key: str) -> CachedToken | None:
        value = await self._cache.get(key)
        if not isinstance(value, CachedToken):
            return None
        if value.expires_at is None or value.expires_at <= time.monotonic():
            await self._cache.delete(key)
            return None
        return value

    async def _store(self, key: str, token: CachedToken) -> None:
        if token.expires_at is None:
            return
        ttl = token.expires_at - time.monotonic()
        if ttl <= 0 or len(self._cache._cache) >= self.max_entries:
            return
        await self._cache.set(key, token, ttl=ttl)
