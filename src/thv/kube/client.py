"""A small typed adapter over kr8s: timeouts, retries, typed errors, a span per call.

kr8s handles kubeconfig, in-cluster credentials, TLS and re-authentication; everything
else (retrying 429/5xx with backoff, honouring ``Retry-After``, timeouts, server-side
apply, precise patches, streaming watches) lives here so the rest of thv never sees kr8s.

Requests and streams travel apart. Every request (get, list, create, apply, patch, delete)
goes over one multiplexed HTTP/2 connection built from kr8s's credentials: with dozens of
requests in flight, HTTP/1.1's pool kept opening connections (a TLS handshake each: a quarter
of the operator's CPU on a cold start, ``docs/benchmarks.md``). Watches stay on kr8s's own
HTTP/1.1 connections, one per stream, so a slow watch reader never holds up the writes by
HTTP/2 flow control.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import anyio
import httpx
import kr8s
import kr8s.asyncio
from opentelemetry import trace

from thv.kube.errors import ApiError, error_from_response
from thv.kube.resources import Resource
from thv.observability import metrics

PatchType = Literal["json", "merge", "apply", "strategic"]
_CONTENT_TYPES: dict[str, str] = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "apply": "application/apply-patch+yaml",
    "strategic": "application/strategic-merge-patch+json",
}
FIELD_MANAGER = "thv"
#: bodies larger than this go over HTTP/1.1: the API server answers an oversized body (over
#: 3 MiB) at once and resets the HTTP/2 stream, which httpcore's HTTP/2 client does not notice
#: while it waits to send the rest (the request hangs until its timeout)
H2_BODY_LIMIT = 256 * 1024
_tracer = trace.get_tracer("thv.kube")


async def connect(
    kubeconfig: str | None = None, context: str | None = None, *, timeout: float = 30.0
) -> KubeClient:
    """Connect using a kubeconfig (path or default) or the in-cluster service account."""
    kwargs: dict[str, Any] = {}
    if kubeconfig:
        if not await (await anyio.Path(kubeconfig).expanduser()).is_file():
            raise ConfigError(f"kubeconfig {kubeconfig} does not exist")
        kwargs["kubeconfig"] = kubeconfig
    if context:
        kwargs["context"] = context
    with warnings.catch_warnings():
        # kr8s warns about server versions newer than it was tested with; thv pins its own.
        warnings.filterwarnings("ignore", message="Kubernetes version", category=UserWarning)
        try:
            api = await kr8s.asyncio.api(**kwargs)
        except ValueError as exc:  # kr8s: "Unable to find valid credentials"
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config or in-cluster"
            raise ConfigError(f"no usable Kubernetes credentials ({where}): {exc}") from exc
    return KubeClient(api, timeout=timeout)


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster credentials."""


class KubeClient:
    """Typed API calls with a timeout each and bounded retries for transient failures."""

    def __init__(
        self,
        api: Any,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        user_agent: str = "thv",
    ) -> None:
        self._api = api
        self._http: httpx.AsyncClient | None = None
        self._sni: dict[str, str] | None = None
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.user_agent = user_agent

    @property
    def api(self) -> Any:
        """The underlying kr8s API object (for tests and tools)."""
        return self._api

    async def _session(self, *, renew: bool = False) -> httpx.AsyncClient:
        """The HTTP/2 client for requests (built from kr8s's credentials; ``renew`` after a
        401 re-reads them, as kr8s does for its own session)."""
        if renew:
            await self._api.auth.reauthenticate()
        if renew or self._http is None or self._http.is_closed:
            old, auth = self._http, self._api.auth
            headers = {"User-Agent": self.user_agent}
            if auth.token:
                headers["Authorization"] = f"Bearer {auth.token}"
            self._http = httpx.AsyncClient(
                http2=True,
                base_url=auth.server,
                headers=headers,
                verify=await auth.ssl_context(),
                timeout=self.timeout,
                proxy=auth.proxy,
            )
            self._sni = {"sni_hostname": auth.tls_server_name} if auth.tls_server_name else None
            if old is not None:
                await old.aclose()
        return self._http

    async def aclose(self) -> None:
        """Close the request connection (watch streams close with their iterators)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _send_h1(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        content: bytes,
        content_type: str,
        timeout: float,
    ) -> tuple[int, bytes, httpx.Response]:
        """One request over kr8s's HTTP/1.1 session (see :data:`H2_BODY_LIMIT`)."""
        async with self._api.call_api(
            method,
            version="",
            base=path,
            url="",
            raise_for_status=False,
            params=dict(params or {}),
            content=content,
            headers={"Content-Type": content_type, "User-Agent": self.user_agent},
            timeout=timeout,
        ) as response:
            return response.status_code, response.content, response

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_cap)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str = "application/json",
        verb: str,
        resource: str,
        timeout: float | None = None,
    ) -> bytes:
        """Send one request, retrying 429, 5xx and transport errors; return the body."""
        is_write = method in ("POST", "PUT", "PATCH", "DELETE")
        with _tracer.start_as_current_span(f"k8s {verb} {resource}", kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute("k8s.verb", verb)
            span.set_attribute("k8s.resource", resource)
            span.set_attribute("url.path", path)
            attempt = 0
            renewed = False
            while True:
                retry_after: float | None = None
                try:
                    if content is not None and len(content) > H2_BODY_LIMIT:
                        code, body, response = await self._send_h1(
                            method, path, params, content, content_type, timeout or self.timeout
                        )
                    else:
                        http = await self._session()
                        response = await http.request(
                            method,
                            path,
                            params=params,
                            content=content,
                            headers={"Content-Type": content_type},
                            timeout=timeout or self.timeout,
                            extensions=self._sni,
                        )
                        code = response.status_code
                        body = response.content
                        if code == 401 and not renewed:  # credentials rotated: read them again
                            renewed = True
                            await self._session(renew=True)
                            continue
                except (httpx.TransportError, kr8s.APITimeoutError) as exc:
                    code, body = 0, b""
                    err: ApiError = ApiError(0, "Unavailable", type(exc).__name__)
                else:
                    metrics.API_REQUESTS.labels(verb, resource, str(code)).inc()
                    if code < 400:
                        span.set_attribute("http.response.status_code", code)
                        if is_write:
                            metrics.API_WRITES.labels(verb, resource).inc()
                        return bytes(body)
                    err = error_from_response(code, body)
                    ra = response.headers.get("Retry-After")
                    if ra and ra.isdigit():
                        retry_after = float(ra)
                if not (code == 0 or err.retryable) or attempt + 1 >= self.max_attempts:
                    span.set_attribute("http.response.status_code", code)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{code} {err.reason}"))
                    raise err
                metrics.API_RETRIES.labels(resource).inc()
                await anyio.sleep(self._backoff(attempt, retry_after))
                attempt += 1

    # -- typed verbs ---------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> bytes:
        """GET one object; raises :class:`~thv.kube.NotFound`."""
        return await self.request("GET", res.path(namespace, name), verb="get", resource=str(res))

    async def get_or_none(self, res: Resource, name: str, namespace: str | None = None) -> bytes | None:
        """GET one object, or ``None`` when it does not exist."""
        from thv.kube.errors import NotFound

        try:
            return await self.get(res, name, namespace)
        except NotFound:
            return None

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int = 500,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> bytes:
        """LIST one page of a collection (``namespace=None`` lists across all namespaces)."""
        params: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            params["labelSelector"] = label_selector
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self.request("GET", res.path(namespace), params=params, verb="list", resource=str(res))

    async def create(self, res: Resource, body: bytes, namespace: str | None = None) -> bytes:
        """POST a new object; raises :class:`~thv.kube.Conflict` when it exists."""
        return await self.request("POST", res.path(namespace), content=body, verb="create", resource=str(res))

    async def apply(
        self,
        res: Resource,
        name: str,
        body: bytes,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        force: bool = True,
        field_manager: str = FIELD_MANAGER,
    ) -> bytes:
        """Server-side apply ``body`` (JSON is valid YAML) as ``field_manager``."""
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        return await self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            params=params,
            content=body,
            content_type=_CONTENT_TYPES["apply"],
            verb="apply",
            resource=str(res),
        )

    async def patch(
        self,
        res: Resource,
        name: str,
        body: bytes,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
    ) -> bytes:
        """PATCH with a JSON patch, merge patch or strategic merge patch."""
        params = {"fieldManager": FIELD_MANAGER}
        return await self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            params=params,
            content=body,
            content_type=_CONTENT_TYPES[patch_type],
            verb="patch",
            resource=str(res),
        )

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, body: bytes | None = None
    ) -> None:
        """DELETE an object (404 is not an error: the goal is reached)."""
        from thv.kube.errors import NotFound

        try:
            await self.request(
                "DELETE", res.path(namespace, name), content=body, verb="delete", resource=str(res)
            )
        except NotFound:
            return

    async def watch_lines(
        self,
        res: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 290,
        inactivity_timeout: float = 70.0,
    ) -> AsyncIterator[bytes]:
        """Stream a watch as raw JSON lines, with bookmarks and an inactivity timeout.

        Raises :class:`TimeoutError` when nothing (not even a bookmark) arrives for
        ``inactivity_timeout`` seconds, and :class:`~thv.kube.ApiError` for error answers.
        The generator returns normally when the server ends the watch.
        """
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        metrics.API_REQUESTS.labels("watch", str(res), "stream").inc()
        timeout = httpx.Timeout(self.timeout, read=inactivity_timeout)
        try:
            async with self._api.call_api(
                "GET",
                version="",
                base=res.path(namespace),
                url="",
                raise_for_status=False,
                stream=True,
                params=params,
                timeout=timeout,
                headers={"User-Agent": self.user_agent},
            ) as response:
                if response.status_code >= 400:
                    raise error_from_response(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if line:
                        yield line.encode()
        except (httpx.ReadTimeout, kr8s.APITimeoutError) as exc:
            raise TimeoutError(f"watch {res} silent for {inactivity_timeout}s") from exc
