"""The ``thv`` command line: operator, CRDs, offline rendering, proxy and the dev cluster."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from thv import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _add_kube_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig path (default: in-cluster, then $KUBECONFIG/~/.kube/config)",
    )
    p.add_argument("--context", default=None, help="kubeconfig context")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="thv",
        description="Run MCP servers on Kubernetes with OAuth 2.0 Token Exchange (ToolHive-compatible operator).",
    )
    parser.add_argument("--version", action="version", version=f"thv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    op = sub.add_parser("operator", help="run the operator").add_subparsers(dest="op_command", metavar="run")
    run = op.add_parser("run", help="reconcile MCPServer, MCPToolConfig and MCPExternalAuthConfig")
    _add_kube_flags(run)
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="namespace to watch (repeatable; default: $WATCH_NAMESPACE comma list, else all namespaces)",
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--use-configmap",
        dest="use_configmap",
        action="store_true",
        default=None,
        help="RunConfig ConfigMap mode (mirrors TOOLHIVE_USE_CONFIGMAP=true)",
    )
    mode.add_argument(
        "--use-flags",
        dest="use_configmap",
        action="store_false",
        help="CLI-flag mode (mirrors TOOLHIVE_USE_CONFIGMAP=false, the default)",
    )
    run.add_argument(
        "--metrics-bind-address", default=":8080", help="address for /metrics, /healthz, /readyz"
    )
    run.add_argument(
        "--health-probe-bind-address",
        default=None,
        help="accepted for upstream compatibility; same server as metrics",
    )
    run.add_argument(
        "--leader-elect", action="store_true", help="elect a leader through a coordination.k8s.io Lease"
    )
    run.add_argument(
        "--leader-election-namespace", default=os.environ.get("POD_NAMESPACE"), help="namespace of the Lease"
    )
    run.add_argument(
        "--resync-period",
        type=float,
        default=300.0,
        help="seconds between full re-announcements (default 300)",
    )
    run.add_argument("--log-format", choices=("json", "console"), default="json")
    run.add_argument("--log-level", default=os.environ.get("THV_LOG_LEVEL", "INFO"))

    crds = sub.add_parser("crds", help="print the CRDs, or apply them with --apply")
    _add_kube_flags(crds)
    crds.add_argument(
        "--apply", action="store_true", help="server-side apply the CRDs and wait until established"
    )

    rbac = sub.add_parser(
        "rbac", help="print the operator's ClusterRole, generated from what the code declares"
    )
    rbac.add_argument("--name", default="thv-operator-manager-role")

    render = sub.add_parser(
        "render", help="offline: print the objects the operator would write for manifests"
    )
    render.add_argument(
        "-f", "--filename", action="append", required=True, help="manifest file (repeatable, '-' for stdin)"
    )
    render.add_argument(
        "--use-configmap", action="store_true", help="render ConfigMap mode (default: flag mode)"
    )
    render.add_argument("--runner-image", default=os.environ.get("TOOLHIVE_RUNNER_IMAGE"))
    render.add_argument(
        "--diff",
        action="store_true",
        help="compare with the live cluster: print same/differs/missing per object and a unified "
        "diff of the fields thv sets; exit 1 when anything differs",
    )
    render.add_argument(
        "--namespace", "-n", default=None, help="namespace for manifests without one (default: default)"
    )
    _add_kube_flags(render)

    proxy = sub.add_parser("proxy", help="RFC 8693 token-exchange reverse proxy in front of an MCP server")
    try:
        from thv.proxy.cli import add_proxy_arguments
    except ImportError:  # pragma: no cover - the proxy package is optional at build time
        pass
    else:
        add_proxy_arguments(proxy)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``thv`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, no traceback, for anything unexpected at the top
        if os.environ.get("THV_DEBUG"):
            raise
        expected = type(exc).__name__ in ("ConfigError", "FileNotFoundError", "PermissionError")
        print(f"thv: error: {exc if expected else f'{type(exc).__name__}: {exc}'}", file=sys.stderr)
        return EXIT_ERROR


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "operator" and args.op_command == "run":
        from thv.operator.main import run_from_args

        if args.use_configmap is None:
            args.use_configmap = _env_bool("TOOLHIVE_USE_CONFIGMAP")
        if args.namespace is None and os.environ.get("WATCH_NAMESPACE"):
            args.namespace = [n.strip() for n in os.environ["WATCH_NAMESPACE"].split(",") if n.strip()]
        return run_from_args(args)
    if args.command == "crds":
        from thv.commands import crds_command

        return crds_command(args)
    if args.command == "rbac":
        from thv.commands import rbac_command

        return rbac_command(args)
    if args.command == "render":
        from thv.commands import render_command

        return render_command(args)
    if args.command == "proxy":
        from thv.proxy.cli import main_from_args

        return main_from_args(args)
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
