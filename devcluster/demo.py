"""The README's run command: the point of the project, shown on this machine.

``python -m devcluster.demo [--use-configmap] [--once]`` starts the local cluster with a real
node, Keycloak on the host, installs the operator in-cluster with Helm (the locally built
``thv`` image), applies ``examples/`` made runnable here (:func:`localize`), waits until every
MCPServer is Running, then makes one MCP tool call with the official MCP SDK client through an
example server's runner with a Keycloak user token, prints what the MCP server saw (the
exchanged token) and how to make the same call by hand, and keeps everything running until
Ctrl-C (``--once`` exits after the call).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from devcluster import ControlPlane
from devcluster.e2e import claims, helm_install
from devcluster.helm import Helm, helm_binary
from devcluster.keycloak import (
    PROXY_CLIENT_ID,
    PROXY_CLIENT_SECRET,
    TARGET_AUDIENCE,
    KeycloakServer,
    find_jdk,
    install_keycloak,
)
from devcluster.node import NODE_IP
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


def apply_examples(
    cp: ControlPlane, ns: str, directory: Path | None = None, *, docs: list[dict[str, Any]] | None = None
) -> list[tuple[str, str]]:
    """Create the examples (or ``docs``) in ``ns`` (idempotent); returns (kind, name) of each object."""
    cp.api_request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    created = []
    for doc in docs if docs is not None else example_docs(directory):
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


def localize(docs: list[dict[str, Any]], *, image: str, kc: KeycloakServer) -> list[dict[str, Any]]:
    """The examples, made runnable on this machine (no registry, no internet): every MCPServer
    runs the demo MCP server image (``imagePullPolicy: Never``) and verifies the tokens it gets
    against the local Keycloak; every token exchange goes to the local Keycloak as the
    ``mcp-proxy`` client for the audience ``mcp-server``. Names and everything else stay."""
    out = []
    header_of: dict[str, str | None] = {}
    secrets: set[str] = set()
    for doc in docs:
        if doc["kind"] == "MCPExternalAuthConfig":
            te = doc["spec"]["tokenExchange"]
            te.update(tokenUrl=kc.token_url, clientId=PROXY_CLIENT_ID, audience=TARGET_AUDIENCE)
            te.pop("scopes", None)
            if te.get("clientSecretRef"):
                secrets.add(te["clientSecretRef"]["name"])
            header_of[doc["metadata"]["name"]] = te.get("externalTokenHeaderName")
    for doc in docs:
        if doc["kind"] == "Secret" and doc["metadata"]["name"] in secrets:
            doc["stringData"] = {k: PROXY_CLIENT_SECRET for k in doc.get("stringData", {"client-secret": ""})}
        if doc["kind"] == "MCPServer":
            spec = doc["spec"]
            spec["image"] = image
            spec.pop("tools", None)  # the demo server's tools are echo and whoami
            ref = (spec.get("externalAuthConfigRef") or {}).get("name")
            env = [e for e in spec.get("env", []) if not e["name"].startswith("DEMO_MCP_")]
            if ref:
                env += [
                    {"name": "DEMO_MCP_JWKS_URL", "value": kc.jwks_url},
                    {"name": "DEMO_MCP_AUDIENCE", "value": TARGET_AUDIENCE},
                    {"name": "DEMO_MCP_ISSUER", "value": kc.issuer},
                ]
                if header_of.get(ref):
                    env.append({"name": "DEMO_MCP_TOKEN_HEADER", "value": str(header_of[ref])})
            else:
                env.append({"name": "DEMO_MCP_NO_AUTH", "value": "1"})
            spec["env"] = env
            spec["podTemplateSpec"] = {"spec": {"containers": [{"name": "mcp", "imagePullPolicy": "Never"}]}}
        out.append(doc)
    return out


def show_call(cp: ControlPlane, kc: KeycloakServer, server: str) -> bool:
    """One MCP tool call through ``server``'s runner with alice's Keycloak token; prints what the
    MCP server saw and how to make the same call by hand."""
    import anyio

    from devcluster.mcpcall import call_tool

    _, svc = cp.api_request("GET", f"/api/v1/namespaces/{NAMESPACE}/services/mcp-{server}-proxy")
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/mcp"
    token = kc.password_token()
    user = claims(token)
    t0 = time.monotonic()
    out = anyio.run(lambda: call_tool(url, "whoami", token=token))
    took = time.monotonic() - t0
    seen = out.result
    print(
        f"""
MCP call through {server}'s runner ({url}), as {user.get("preferred_username", "alice")}, in {took:.2f}s:
  tools listed:            {", ".join(out.tools)}
  the user's token:        iss={user.get("iss")}  aud={user.get("aud")}  azp={user.get("azp")}
  the MCP server received: iss={seen.get("iss")}  aud={seen.get("aud")}  azp={seen.get("azp")}  sub={seen.get("sub")}
  whoami answered:         {seen}
The runner exchanged the user's token (RFC 8693) for one with audience {TARGET_AUDIENCE!r}; the MCP
server verified its signature against Keycloak's keys and never saw the user's token.

Make the same call yourself (from this machine):
  TOKEN=$(curl -s {kc.token_url} -d grant_type=password -d client_id=mcp-client \\
      -d username=alice -d password=alice-password | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  .venv/bin/python -m devcluster.mcpcall {url} whoami --token "$TOKEN"
  export KUBECONFIG={cp.kubeconfig}
""",
        flush=True,
    )
    return seen.get("aud") == TARGET_AUDIENCE or TARGET_AUDIENCE in (seen.get("aud") or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.demo", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument(
        "--use-configmap", action="store_true", help="RunConfig ConfigMap mode (default: flags)"
    )
    parser.add_argument("--once", action="store_true", help="exit after the tool call")
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    with ControlPlane(node="real") as cp:
        kc = KeycloakServer(
            install_keycloak(), find_jdk(21), cp.dir / "logs" / "keycloak.log", http_host=NODE_IP
        )
        kc.start()
        try:
            thv_image = cp.node.load("thv")
            demo_image = cp.node.load("demo-mcp")
            helm = Helm(helm_binary(), cp.dir / "helm-home")
            mode = "ConfigMap" if args.use_configmap else "flag"
            say(f"installing the operator with Helm ({thv_image}, {mode} mode, 1 replica)")
            took = helm_install(cp, helm, thv_image, use_configmap=args.use_configmap)
            say(f"operator running in-cluster (Ready in {took:.1f}s)")
            objs = apply_examples(cp, NAMESPACE, docs=localize(example_docs(), image=demo_image, kc=kc))
            say(
                f"applied {len(objs)} example objects into namespace {NAMESPACE} "
                f"(images -> {demo_image}, token exchange -> the local Keycloak)"
            )
            deadline = time.monotonic() + 240
            table, settled = status_table(cp, NAMESPACE)
            while not settled and time.monotonic() < deadline:
                time.sleep(1)
                table, settled = status_table(cp, NAMESPACE)
            print(table, flush=True)
            say("all examples Running" if settled else "some examples did not settle in 240s")
            ok = settled and show_call(cp, kc, "fetch-with-auth")
            say(f"from start to the tool's answer: {time.monotonic() - t_start:.0f}s")
            if not args.once:
                say("everything keeps running; press Ctrl-C to stop it all")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1)
                        cp.check()
            return 0 if ok else 1
        finally:
            kc.stop()


if __name__ == "__main__":
    sys.exit(main())
