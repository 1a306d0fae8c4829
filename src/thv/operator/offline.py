"""``thv render``: what the operator would write for given manifests, without a cluster.

References (MCPToolConfig, MCPExternalAuthConfig, ConfigMaps) are taken from the same files.
With ``--diff`` each object is compared with the live cluster (only the fields thv sets).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec
import yaml

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.hashing import config_hash
from thv.render import RenderError, render
from thv.render.settings import OperatorSettings


def _load(paths: list[str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        docs.extend(d for d in yaml.safe_load_all(text) if isinstance(d, dict))
    return docs


def render_docs(
    docs: list[dict[str, Any]], settings: OperatorSettings, namespace: str = "default"
) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects, errors) for every MCPServer among ``docs``; ``namespace`` is the default for
    documents without one (like ``kubectl apply -n``)."""
    by_kind: dict[tuple[str, str, str], dict[str, Any]] = {}
    for d in docs:
        meta = d.get("metadata") or {}
        by_kind[(d.get("kind", ""), meta.get("namespace") or namespace, meta.get("name", ""))] = d
    out: list[dict[str, Any]] = []
    errors: list[str] = []
    for (kind, ns, name), doc in by_kind.items():
        if kind != "MCPServer":
            continue
        doc.setdefault("metadata", {})["namespace"] = ns
        try:
            server = msgspec.convert(doc, MCPServer)
        except msgspec.ValidationError as exc:
            errors.append(f"MCPServer {ns}/{name}: {exc}")
            continue
        ext = tc = None
        if server.spec.external_auth_config_ref is not None:
            raw = by_kind.get(("MCPExternalAuthConfig", ns, server.spec.external_auth_config_ref.name))
            ext = msgspec.convert(raw, MCPExternalAuthConfig) if raw else None
        if server.spec.tool_config_ref is not None:
            raw = by_kind.get(("MCPToolConfig", ns, server.spec.tool_config_ref.name))
            tc = msgspec.convert(raw, MCPToolConfig) if raw else None

        def cm(ref: Any, ns: str = ns) -> dict[str, str] | None:
            raw = by_kind.get(("ConfigMap", ns, ref.name)) if ref is not None else None
            return dict((raw or {}).get("data") or {}) if raw else None

        spec = server.spec
        pp = spec.permission_profile
        try:
            desired = render(
                server,
                settings,
                tool_config=tc,
                external_auth=ext,
                oidc_configmap_data=cm(spec.oidc_config.config_map) if spec.oidc_config else None,
                authz_configmap_data=cm(spec.authz_config.config_map) if spec.authz_config else None,
                permission_profile_data=cm(pp) if pp is not None and pp.type == "configmap" else None,
                toolconfig_hash=config_hash(tc.spec) if tc else None,
                extauth_hash=config_hash(ext.spec) if ext else None,
            )
        except RenderError as err:
            errors.append(f"MCPServer {ns}/{name}: {err.reason}: {err.message}")
            continue
        out.extend(desired.bodies())
        errors.extend(f"MCPServer {ns}/{name}: warning: {w}" for w in desired.warnings)
    return out, errors


def project(live: Any, want: Any) -> Any:
    """``live`` cut down to the fields ``want`` sets: what the operator owns of the live object
    (server-set fields such as status, uid or defaulted specs are left out of the diff)."""
    if isinstance(want, dict) and isinstance(live, dict):
        return {k: project(live[k], v) for k, v in want.items() if k in live}
    if isinstance(want, list) and isinstance(live, list) and len(want) == len(live):
        return [project(lv, wv) for lv, wv in zip(live, want, strict=True)]
    return live


def unified_diff(live: Any, want: Any, label: str) -> list[str]:
    """A unified diff (YAML) from the live projection to the rendered object."""
    import difflib

    a = yaml.safe_dump(live, sort_keys=True).splitlines(keepends=True)
    b = yaml.safe_dump(want, sort_keys=True).splitlines(keepends=True)
    return list(difflib.unified_diff(a, b, label, "rendered"))


def render_files(args: argparse.Namespace) -> int:
    settings = OperatorSettings.from_env(use_configmap=args.use_configmap, runner_image=args.runner_image)
    objs, errors = render_docs(_load(args.filename), settings, args.namespace or "default")
    for e in errors:
        print(f"thv render: {e}", file=sys.stderr)
    if args.diff:
        return _diff(args, objs)
    sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
    return 1 if any("warning" not in e for e in errors) else 0


def _diff(args: argparse.Namespace, objs: list[dict[str, Any]]) -> int:
    import anyio

    from thv.kube import connect
    from thv.kube.resources import MCPSERVERS
    from thv.subscribers.owned import RESOURCES
    from thv.writers.diff import is_subset

    async def run() -> int:
        client = await connect(args.kubeconfig, args.context)
        differ = 0
        owner_uids: dict[tuple[str, str], str] = {}
        for obj in objs:
            meta = obj["metadata"]
            # offline renders have no owner UID: take the live MCPServer's, so an object owned
            # by the right server compares equal
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "MCPServer" and not ref.get("uid"):
                    key = (meta.get("namespace") or "", ref["name"])
                    if key not in owner_uids:
                        owner = await client.get_or_none(MCPSERVERS, ref["name"], key[0])
                        owner_uids[key] = msgspec.json.decode(owner)["metadata"]["uid"] if owner else ""
                    ref["uid"] = owner_uids[key]
            live = await client.get_or_none(RESOURCES[obj["kind"]], meta["name"], meta.get("namespace"))
            current = None if live is None else msgspec.json.decode(live)
            state = "missing" if current is None else ("same" if is_subset(obj, current) else "differs")
            differ += state != "same"
            print(f"{state:8} {obj['kind']} {meta.get('namespace')}/{meta['name']}")
            if state == "differs":
                sys.stdout.writelines(unified_diff(project(current, obj), obj, f"live {obj['kind']}"))
        return 1 if differ else 0

    return anyio.run(run)
