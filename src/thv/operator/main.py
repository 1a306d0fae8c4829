"""``thv operator run``."""

from __future__ import annotations

import argparse
import logging

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
    configure_tracing()
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
        await op.run()

    anyio.run(_main)
    return 0
