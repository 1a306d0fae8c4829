"""``thv render``: what the operator would write for given manifests, without a cluster.

The files are read here; gathering and resolving them is :mod:`thv.render.manifests` (the same
gatherer the runner's ``--dry-run --manifest`` uses). With ``--diff`` each object is compared
with the live cluster (only the fields thv sets).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec
import yaml

from thv.render.manifests import is_warning, parse_documents, render_docs
from thv.render.settings import OperatorSettings


def _load(paths: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The mapping documents of every file, and one error per file that is not YAML."""
    docs: list[dict[str, Any]] = []
    errors: list[str] = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        found, bad = parse_documents(text, path)
        docs.extend(found)
        errors.extend(bad)
    return docs, errors


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
    docs, errors = _load(args.filename)
    objs, render_errors = render_docs(docs, settings, args.namespace or "default")
    errors += render_errors
    for e in errors:
        print(f"thv render: {e}", file=sys.stderr)
    failed = 1 if any(not is_warning(e) for e in errors) else 0
    if args.diff:
        return max(_diff(args, objs), failed)
    sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
    return failed


def _diff(args: argparse.Namespace, objs: list[dict[str, Any]]) -> int:
    import anyio

    from thv.kube import connect
    from thv.kube.resources import MCPSERVERS
    from thv.sources.kinds import OWNED_RESOURCES as RESOURCES
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
