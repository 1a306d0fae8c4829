"""``thv operator run``."""

from __future__ import annotations

import argparse
import logging
import signal

import anyio

from thv.observability.logs import configure_logging
from thv.observability.tracing import configure_tracing

log = logging.getLogger("thv.operator")


def _addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host or "0.0.0.0", int(port))


def run_from_args(args: argparse.Namespace) -> int:
    """Run the operator until interrupted."""
    configure_logging(args.log_level, json=args.log_format == "json")
    provider = configure_tracing()
    from thv.kube import connect
    from thv.operator.app import Operator
    from thv.render.settings import OperatorSettings

    settings = OperatorSettings.from_env(use_configmap=args.use_configmap)

    async def _main() -> None:
        client = await connect(args.kubeconfig, args.context)
        op = Operator(
            client,
            settings,
            namespaces=args.namespace,
            resync_period=args.resync_period,
            leader_election_namespace=(args.leader_election_namespace or "default")
            if args.leader_elect
            else None,
            health_address=_addr(args.metrics_bind_address) if args.metrics_bind_address else None,
        )
        log.info(
            "starting thv operator (mode=%s, namespaces=%s)",
            "configmap" if settings.use_configmap else "flags",
            args.namespace or "all",
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, tg.cancel_scope)
                await op.run()
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    try:
        anyio.run(_main)
    finally:
        provider.shutdown()  # flush spans still queued for the exporter
    log.info("thv operator stopped")
    return 0


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    """SIGTERM (kubelet, ``kill``) and SIGINT stop the operator cleanly: watches and workers are
    cancelled, the leader Lease is released so a standby takes over at once, and exit code is 0."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
