"""Implementations of the small ``thv`` subcommands (crds, rbac, render, dev)."""

from __future__ import annotations

import argparse
import sys

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
    from thv.clusterrole import cluster_role

    sys.stdout.write(yaml.safe_dump(cluster_role(args.name), sort_keys=False))
    return 0


def render_command(args: argparse.Namespace) -> int:
    """Render manifests offline (or diff them against a live cluster)."""
    from thv.operator.offline import render_files

    return render_files(args)
