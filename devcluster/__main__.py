"""``python -m devcluster up [--jaeger] | down`` (also ``scripts/dev``): the local cluster as a daemon.

``up`` prints shell ``export`` lines on stdout (``eval "$(scripts/dev up)"``): ``KUBECONFIG``
and, with Jaeger, ``OTEL_EXPORTER_OTLP_ENDPOINT``/``OTEL_SERVICE_NAME`` for an operator run from
that shell; progress and the Jaeger query URL go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/dev", description="the local cluster built from Go modules"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,down}")
    default_state = os.path.expanduser("~/.cache/thv/dev")
    up = sub.add_parser("up", help="build (cached) and start etcd, kube-apiserver, kcm, scheduler and kwok")
    up.add_argument("--state-dir", default=default_state)
    up.add_argument("--jaeger", action="store_true", help="also run Jaeger (built from its Go module)")
    up.add_argument(
        "--node",
        action="store_true",
        help="also run a real node (containerd, kubelet, kube-proxy, CoreDNS; needs root): pods really run",
    )
    down = sub.add_parser("down", help="stop the local cluster and remove its data")
    down.add_argument("--state-dir", default=default_state)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from devcluster.daemon import dev_down, dev_up

    args = build_parser().parse_args(argv)
    state_dir = Path(args.state_dir)
    try:
        if args.command == "up":
            jaeger = bool(args.jaeger)
            print(
                f"starting the local cluster{' and Jaeger' if jaeger else ''} "
                "(the first run builds it from Go modules)...",
                file=sys.stderr,
            )
            state = dev_up(state_dir, jaeger=jaeger, node=bool(args.node))
            print(f"local cluster ready at {state['server']}", file=sys.stderr)
            print(f"export KUBECONFIG={state['kubeconfig']}")
            info = state.get("jaeger")
            if info is not None:
                print(
                    f"Jaeger UI {info['ui_url']} (query API {info['query_url']}/api/traces?service=thv-operator; "
                    "the UI page is a placeholder: the Go module ships no UI assets)",
                    file=sys.stderr,
                )
                if args.node:
                    print(
                        f"pods on the real node export to the same endpoint ({info['otlp_http_endpoint']}, the "
                        "node's bridge address): e.g. helm install ... --set "
                        f"otel.endpoint={info['otlp_http_endpoint']}",
                        file=sys.stderr,
                    )
                print(f"export OTEL_EXPORTER_OTLP_ENDPOINT={info['otlp_http_endpoint']}")
                print("export OTEL_SERVICE_NAME=thv-operator")
            return 0
        if dev_down(state_dir):
            print("local cluster stopped", file=sys.stderr)
        else:
            print("no local cluster was running", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line at the top
        if os.environ.get("THV_DEBUG"):
            raise
        print(f"scripts/dev: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
