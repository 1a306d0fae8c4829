"""The runner's Kubernetes runtime, inside the proxy pod.

Three concurrent loops, until SIGINT/SIGTERM:

1. **workload**: server-side apply (field manager ``toolhive-container-manager``, as upstream) of
   the StatefulSet and, for sse/streamable-http, the headless Service; then a watch on both
   (label ``toolhive-name=<name>``) re-applies on any change or deletion, plus a resync every
   60 s: drift is repaired (an apply that changes nothing writes nothing);
2. **stdio** (transport ``stdio`` only): attach to the ``mcp`` container of the running pod
   labelled ``app=<name>`` (``pods/attach`` over WebSocket through the API server) and serve it
   through :class:`~thv.runner.bridge.StdioBridge` on a loopback port; when the pod is replaced
   the attach ends and the bridge reattaches to the new pod;
3. **data plane**: ``thv proxy``'s ASGI app (token exchange, OIDC validation) on the listen
   address, forwarding to the headless Service (sse/streamable-http) or to the bridge (stdio);
   ``GET /health`` answers 200 without a token (the Deployment's probes).

Nothing here deletes the workload: the operator's finalizer does when the MCPServer goes.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import anyio
import msgspec

from thv.kube import ApiError, KubeClient, Resource, connect
from thv.kube.attach import AttachStream, open_attach
from thv.proxy.asgi import ASGIApp, Receive, Scope, Send, send_json
from thv.runner.bridge import BridgeApp, StdioBridge
from thv.runner.config import Invocation, RunnerConfig
from thv.runner.termination import fail
from thv.runner.workload import (
    FIELD_MANAGER,
    MCP_CONTAINER,
    JSONObject,
    headless_service,
    owner_reference,
    statefulset,
    target_url,
)

__all__ = ["STATEFULSETS", "WorkloadApplier", "main_run", "run"]

log = logging.getLogger("thv.runner")

STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
SERVICES = Resource("", "v1", "services", "Service")
PODS = Resource("", "v1", "pods", "Pod")
RESYNC_SECONDS = 60.0


class WorkloadApplier:
    """Keeps the StatefulSet (and headless Service) applied; see the module docstring."""

    def __init__(
        self, client: KubeClient, config: RunnerConfig, namespace: str, owner: JSONObject | None = None
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = config.workload.name
        self.objects: list[tuple[Resource, JSONObject]] = [
            (STATEFULSETS, statefulset(config, namespace, owner=owner))
        ]
        service = headless_service(config, namespace, owner)
        if service is not None:
            self.objects.append((SERVICES, service))
        self._wake = anyio.Event()
        self.applies = 0

    async def apply_all(self) -> None:
        for res, body in self.objects:
            meta = body["metadata"]
            assert isinstance(meta, dict)
            name = str(meta["name"])
            await self.client.apply(
                res, name, json.dumps(body).encode(), self.namespace, field_manager=FIELD_MANAGER
            )
            self.applies += 1
        log.info("workload applied statefulset=%s namespace=%s", self.name, self.namespace)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for res, _ in self.objects:
                tg.start_soon(self._watch, res)
            while True:
                try:
                    await self.apply_all()
                except ApiError as exc:
                    log.error("workload apply failed: %s", exc)
                    await anyio.sleep(2)
                    continue
                with anyio.move_on_after(RESYNC_SECONDS):
                    await self._wake.wait()
                self._wake = anyio.Event()
                await anyio.sleep(0.2)  # coalesce a burst of events

    async def _watch(self, res: Resource) -> None:
        selector = f"toolhive-name={self.name}"
        while True:
            try:
                listed = json.loads(await self.client.list(res, self.namespace, label_selector=selector))
                version = str(listed.get("metadata", {}).get("resourceVersion", ""))
                async for line in self.client.watch_lines(
                    res, self.namespace, resource_version=version, label_selector=selector
                ):
                    kind = json.loads(line).get("type")
                    if kind in ("MODIFIED", "DELETED"):
                        self._wake.set()
            except (ApiError, TimeoutError, ValueError) as exc:
                log.debug("watch %s restarts: %s", res, exc)
                await anyio.sleep(1)


SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def service_account_owner(token: str) -> JSONObject | None:
    """The owner reference of the ServiceAccount a bound token belongs to (its claims name it:
    ``kubernetes.io.serviceaccount.{name,uid}``); ``None`` for a token without them. The token's
    signature is not checked: it only tells the runner who it is, the API server checks the rest."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        account = claims["kubernetes.io"]["serviceaccount"]
        return owner_reference("ServiceAccount", str(account["name"]), str(account["uid"]))
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def own_service_account() -> JSONObject | None:
    try:
        with open(SA_TOKEN_FILE, encoding="ascii") as fh:
            return service_account_owner(fh.read().strip())
    except OSError:
        return None


async def _running_pod(client: KubeClient, namespace: str, name: str) -> str:
    listed = json.loads(await client.list(PODS, namespace, label_selector=f"app={name}"))
    for pod in listed.get("items") or []:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        for container in status.get("containerStatuses") or []:
            if container.get("name") == MCP_CONTAINER and (container.get("state") or {}).get("running"):
                return str(meta["name"])
    raise LookupError(f"no running pod with app={name} yet")


def attach_connector(
    client: KubeClient, namespace: str, name: str
) -> contextlib.AbstractAsyncContextManager[AttachStream]:
    """``connect()`` for the bridge: attach to the running MCP server pod."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[AttachStream]:
        pod = await _running_pod(client, namespace, name)
        log.info("attaching to pod=%s container=%s", pod, MCP_CONTAINER)
        async with open_attach(client, namespace, pod, MCP_CONTAINER) as stream:
            yield stream

    return connect()


class _WithHealth:
    """``GET /health`` answered here (no token needed); everything else to the data plane."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/health" and scope["method"] in ("GET", "HEAD"):
            await send_json(send, 200, {"status": "ok"})
            return
        await self.app(scope, receive, send)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Serving(Protocol):
    should_exit: bool
    started: bool

    async def serve(self) -> None: ...


def _server(app: ASGIApp, host: str, port: int) -> _Serving:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # signals are handled once, by run()

    return Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=5,
        )
    )


async def run(
    config: RunnerConfig, namespace: str, client: KubeClient, owner: JSONObject | None = None
) -> int:
    """Run the three loops until SIGINT/SIGTERM (then 0)."""
    from thv.proxy.app import build_app

    w = config.workload
    proxy = config.proxy
    # MCP middleware hook (issue 15): built before anything runs, so a bad policy fails the start
    from thv.middleware.chain import build_chain

    mcp = build_chain(
        config.middleware,
        server_name=w.name,
        transport=w.proxy_mode if w.transport == "stdio" else w.transport,
    )
    applier = WorkloadApplier(client, config, namespace, owner)
    async with anyio.create_task_group() as tg:
        servers: list[_Serving] = []
        stopped: list[anyio.Event] = []

        def start(server: _Serving) -> None:
            done = anyio.Event()

            async def serve() -> None:
                try:
                    await server.serve()
                finally:
                    done.set()

            servers.append(server)
            stopped.append(done)
            tg.start_soon(serve)

        target = target_url(config, namespace)
        if target is None:
            bridge = StdioBridge()
            te = proxy.token_exchange
            header = (
                te.external_token_header_name
                if te is not None and te.header_strategy == "custom"
                else "authorization"
            )
            bridge_port = _free_port()
            bridge_server = _server(
                BridgeApp(bridge, w.proxy_mode, token_header=header), "127.0.0.1", bridge_port
            )
            start(bridge_server)
            tg.start_soon(bridge.run, lambda: attach_connector(client, namespace, w.name))
            target = f"http://127.0.0.1:{bridge_port}"
        data_plane = msgspec.structs.replace(proxy, target_url=target, name=proxy.name or w.name)
        front = _server(
            _WithHealth(build_app(data_plane, mcp=mcp)), data_plane.listen_host, data_plane.listen_port
        )
        tg.start_soon(applier.run)
        start(front)
        log.info(
            "thv-runner serving name=%s transport=%s listen=%s:%d target=%s exchange=%s",
            w.name,
            w.transport if w.transport != "stdio" else f"stdio as {w.proxy_mode}",
            data_plane.listen_host,
            data_plane.listen_port,
            target,
            "on" if data_plane.token_exchange is not None else "off",
        )
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("signal %s: stopping", signal.Signals(signum).name)
                break
        for server in servers:
            server.should_exit = True
        with anyio.move_on_after(6):  # uvicorn drains its connections, then serve() returns
            for done in stopped:
                await done.wait()
        tg.cancel_scope.cancel()
    return 0


def main_run(config: RunnerConfig, invocation: Invocation, namespace: str) -> int:
    """Synchronous entry point: logging, tracing, the API connection, then :func:`run`."""
    from thv.observability.logs import configure_logging
    from thv.observability.tracing import configure_tracing

    configure_logging(
        invocation.log_level or os.environ.get("THV_LOG_LEVEL", "INFO"), json=invocation.log_format == "json"
    )
    configure_tracing("thv-runner")
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        raise RuntimeError("thv-runner must run in the main thread (signals)")

    async def _main() -> int:
        client = await connect()
        return await run(config, namespace, client, own_service_account())

    try:
        # uvloop when installed (a dependency): the data plane's CPU per request drops by a third
        uvloop = importlib.util.find_spec("uvloop") is not None
        return anyio.run(_main, backend_options={"use_uvloop": uvloop})
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        log.error("thv-runner failed: %s: %s", type(exc).__name__, exc)
        fail(f"{type(exc).__name__}: {exc}")
        return 1
