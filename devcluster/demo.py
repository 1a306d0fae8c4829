"""The README's run command: a local control plane, thv's CRDs, the operator, the examples.

``python -m devcluster.demo [--use-configmap] [--once]`` starts everything, applies ``examples/``
into the namespace ``thv-examples``, waits until every MCPServer is Running and every config
hashed, prints their status, then keeps the operator running until Ctrl-C (``--once`` exits).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from devcluster import ControlPlane
from devcluster.paths import checkout

NAMESPACE = "thv-examples"
PATHS = {
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "MCPServer": "/apis/toolhive.stacklok.dev/v1alpha1/namespaces/{ns}/mcpservers",
    "MCPToolConfig": "/apis/toolhive.stacklok.dev/v1alpha1/namespaces/{ns}/mcptoolconfigs",
    "MCPExternalAuthConfig": "/apis/toolhive.stacklok.dev/v1alpha1/namespaces/{ns}/mcpexternalauthconfigs",
}


def say(msg: str) -> None:
    print(f"[thv demo] {msg}", file=sys.stderr, flush=True)


def example_docs(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every document of every example file, in file order."""
    docs: list[dict[str, Any]] = []
    for path in sorted((directory or checkout() / "examples").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return docs


def apply_examples(cp: ControlPlane, ns: str, directory: Path | None = None) -> list[tuple[str, str]]:
    """Create the examples in ``ns`` (idempotent); returns (kind, name) of each object."""
    cp.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    created = []
    for doc in example_docs(directory):
        kind, name = doc["kind"], doc["metadata"]["name"]
        status, body = cp.api_request("POST", PATHS[kind].format(ns=ns), doc)
        if status not in (201, 409):
            raise RuntimeError(f"{kind} {name} was rejected: {body}")
        created.append((kind, name))
    return created


def status_table(cp: ControlPlane, ns: str) -> tuple[str, bool]:
    """A printable table and whether everything is settled."""
    rows = [("KIND", "NAME", "STATUS", "DETAIL")]
    settled = True
    for kind in ("MCPExternalAuthConfig", "MCPToolConfig", "MCPServer"):
        _, body = cp.api_request("GET", PATHS[kind].format(ns=ns))
        for item in body.get("items", []):
            st = item.get("status") or {}
            if kind == "MCPServer":
                phase = st.get("phase", "-")
                settled &= phase == "Running"
                detail = st.get("url", st.get("message", ""))
            else:
                phase = f"hash {st['configHash']}" if st.get("configHash") else "-"
                settled &= bool(st.get("configHash"))
                detail = "type " + item["spec"].get("type", "") if kind == "MCPExternalAuthConfig" else ""
            rows.append((kind, item["metadata"]["name"], phase, detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows), settled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.demo", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument(
        "--use-configmap", action="store_true", help="RunConfig ConfigMap mode (default: flags)"
    )
    parser.add_argument("--once", action="store_true", help="exit after the examples are reconciled")
    args = parser.parse_args(argv)
    import anyio.from_thread

    from thv.kube import connect
    from thv.observability.logs import configure_logging
    from thv.operator.app import Operator
    from thv.operator.install import install_crds
    from thv.render.settings import OperatorSettings

    configure_logging("WARNING", json=False)
    with ControlPlane() as cp:
        settings = OperatorSettings.from_env(use_configmap=args.use_configmap)
        with anyio.from_thread.start_blocking_portal() as portal:

            async def make() -> Operator:
                client = await connect(str(cp.kubeconfig))
                say("installing CRDs")
                await install_crds(client)
                return Operator(client, settings, resync_period=300.0)

            op = portal.call(make)
            future = portal.start_task_soon(op.run)
            while not op.ready.is_set():
                if future.done():
                    future.result()
                time.sleep(0.1)
            say(f"operator running ({'ConfigMap' if settings.use_configmap else 'flag'} mode)")
            objs = apply_examples(cp, NAMESPACE)
            say(f"applied {len(objs)} example objects into namespace {NAMESPACE}")
            deadline = time.monotonic() + 120
            table, settled = status_table(cp, NAMESPACE)
            while not settled and time.monotonic() < deadline:
                time.sleep(1)
                table, settled = status_table(cp, NAMESPACE)
            print(table, flush=True)
            say("all examples reconciled" if settled else "some examples did not settle in 120s")
            say(f"kubeconfig: {cp.kubeconfig}")
            try:
                if not args.once:
                    say("operator keeps running; press Ctrl-C to stop everything")
                    while not future.done():
                        time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                future.cancel()
        return 0 if settled else 1


if __name__ == "__main__":
    sys.exit(main())
