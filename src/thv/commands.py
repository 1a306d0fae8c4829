"""Implementations of the small ``thv`` subcommands (crds, rbac, render, dev)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def crds_command(args: argparse.Namespace) -> int:
    """Print the CRDs, or server-side apply them and wait until they are established."""
    from thv.crdgen import render_crds

    if not args.apply:
        for text in render_crds().values():
            sys.stdout.write(text)
        return 0
    import anyio

    from thv.kube import connect
    from thv.operator.install import install_crds

    async def _apply() -> None:
        client = await connect(args.kubeconfig, args.context)
        await install_crds(client)

    anyio.run(_apply)
    print("CRDs applied and established", file=sys.stderr)
    return 0


def rbac_command(args: argparse.Namespace) -> int:
    """Print the ClusterRole generated from the operator's declarations."""
    from thv.rbac import cluster_role

    sys.stdout.write(yaml.safe_dump(cluster_role(args.name), sort_keys=False))
    return 0


def render_command(args: argparse.Namespace) -> int:
    """Render manifests offline (or diff them against a live cluster)."""
    from thv.operator.offline import render_files

    return render_files(args)


def dev_command(args: argparse.Namespace) -> int:
    """``thv dev up [--jaeger]`` / ``thv dev down``.

    ``up`` prints shell ``export`` lines on stdout (``eval "$(thv dev up)"``): ``KUBECONFIG``
    and, when the daemon runs Jaeger, ``OTEL_EXPORTER_OTLP_ENDPOINT``/``OTEL_SERVICE_NAME`` for
    an operator run from that shell; the rest (progress, the Jaeger UI URL) goes to stderr."""
    from thv.devcluster.daemon import dev_down, dev_up

    state_dir = Path(args.state_dir)
    if args.dev_command == "up":
        jaeger = bool(getattr(args, "jaeger", False))
        print(
            f"starting the local control plane{' and Jaeger' if jaeger else ''} "
            "(the first run builds it from Go modules)...",
            file=sys.stderr,
        )
        state = dev_up(state_dir, jaeger=jaeger)
        print(f"local control plane ready at {state['server']}", file=sys.stderr)
        print(f"export KUBECONFIG={state['kubeconfig']}")
        info = state.get("jaeger")
        if info is not None:
            print(
                f"Jaeger UI {info['ui_url']} (query API {info['query_url']}/api/traces?service=thv-operator; "
                "the UI page is a placeholder: the Go module ships no UI assets)",
                file=sys.stderr,
            )
            print(f"export OTEL_EXPORTER_OTLP_ENDPOINT={info['otlp_http_endpoint']}")
            print("export OTEL_SERVICE_NAME=thv-operator")
        return 0
    if dev_down(state_dir):
        print("local control plane stopped", file=sys.stderr)
    else:
        print("no local control plane was running", file=sys.stderr)
    return 0
