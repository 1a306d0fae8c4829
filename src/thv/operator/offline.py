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

from thv.api.crds import ExternalAuthConfigRef, MCPExternalAuthConfig, MCPServer, MCPToolConfig, ToolConfigRef
from thv.render.resolve import Inputs, Unresolved, reads, resolve
from thv.render.settings import OperatorSettings


def _load(paths: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The mapping documents of every file, and one error per file that is not YAML."""
    docs: list[dict[str, Any]] = []
    errors: list[str] = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        try:
            docs.extend(d for d in yaml.safe_load_all(text) if isinstance(d, dict))
        except yaml.YAMLError as exc:
            errors.append(f"{path}: not YAML: {' '.join(str(exc).split())}")
    return docs, errors


_CONFIG_TYPES: dict[str, type[MCPExternalAuthConfig] | type[MCPToolConfig]] = {
    "MCPExternalAuthConfig": MCPExternalAuthConfig,
    "MCPToolConfig": MCPToolConfig,
}


def _doc_name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


def _doc_namespace(doc: dict[str, Any], default: str) -> str:
    meta = doc.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return ns if isinstance(ns, str) and ns else default


def _invalid(exc: msgspec.ValidationError) -> str:
    return f"invalid: {exc}"


def _found(
    configs: dict[tuple[str, str, str], MCPExternalAuthConfig | MCPToolConfig | str],
    kind: str,
    ns: str,
    ref: ExternalAuthConfigRef | ToolConfigRef | None,
) -> MCPExternalAuthConfig | MCPToolConfig | None:
    found = configs.get((kind, ns, ref.name)) if ref is not None else None
    return None if isinstance(found, str) else found


def _data(
    by_key: dict[tuple[str, str, str], dict[str, Any]], kind: str, ns: str, name: str
) -> dict[str, str] | None:
    """``data`` of a ConfigMap manifest (``stringData`` too for a Secret), ``None`` if absent."""
    doc = by_key.get((kind, ns, name))
    if doc is None:
        return None
    merged: dict[str, str] = {}
    for key in ("data", "stringData"):
        value = doc.get(key)
        if isinstance(value, dict):
            merged.update({str(k): str(v) for k, v in value.items()})
    return merged


def _secret_keys(
    by_key: dict[tuple[str, str, str], dict[str, Any]], ns: str, name: str
) -> frozenset[str] | None:
    data = _data(by_key, "Secret", ns, name)
    return None if data is None else frozenset(data)


def render_docs(
    docs: list[dict[str, Any]], settings: OperatorSettings, namespace: str = "default"
) -> tuple[list[dict[str, Any]], list[str]]:
    """(objects, errors) for every MCPServer among ``docs``; ``namespace`` is the default for
    documents without one (like ``kubectl apply -n``).

    Every valid server is rendered; each bad document (an MCPServer or config without a name or
    that does not decode, a server whose reference is missing or invalid, or that cannot be
    rendered) is one error naming it by kind, namespace and name, with the reason. Warnings are
    errors containing ``warning:``.
    """
    errors: list[str] = []
    by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
    configs: dict[tuple[str, str, str], MCPExternalAuthConfig | MCPToolConfig | str] = {}
    for i, d in enumerate(docs):
        kind = d.get("kind")
        kind = kind if isinstance(kind, str) else ""
        ns, name = _doc_namespace(d, namespace), _doc_name(d)
        if kind in ("MCPServer", *_CONFIG_TYPES) and not name:
            errors.append(f"{kind} {ns}/<document {i + 1}>: metadata.name is required")
            continue
        by_key[(kind, ns, name)] = d
        if kind in _CONFIG_TYPES:
            try:
                configs[(kind, ns, name)] = msgspec.convert(
                    {**d, "metadata": {**d["metadata"], "namespace": ns}}, _CONFIG_TYPES[kind]
                )
            except msgspec.ValidationError as exc:
                configs[(kind, ns, name)] = _invalid(exc)
                errors.append(f"{kind} {ns}/{name}: {_invalid(exc)}")
    out: list[dict[str, Any]] = []
    for (kind, ns, name), doc in by_key.items():
        if kind != "MCPServer":
            continue
        label = f"MCPServer {ns}/{name}"
        try:
            server = msgspec.convert({**doc, "metadata": {**doc["metadata"], "namespace": ns}}, MCPServer)
        except msgspec.ValidationError as exc:
            errors.append(f"{label}: {_invalid(exc)}")
            continue
        spec = server.spec
        bad_ref = False
        for ref_kind, ref in (
            ("MCPExternalAuthConfig", spec.external_auth_config_ref),
            ("MCPToolConfig", spec.tool_config_ref),
        ):
            found = configs.get((ref_kind, ns, ref.name)) if ref is not None else None
            if isinstance(found, str):
                errors.append(
                    f"{label}: references {ref_kind} {ns}/{ref.name if ref else ''}, which is {found}"
                )
                bad_ref = True
        if bad_ref:
            continue
        ext = _found(configs, "MCPExternalAuthConfig", ns, spec.external_auth_config_ref)
        tc = _found(configs, "MCPToolConfig", ns, spec.tool_config_ref)
        assert ext is None or isinstance(ext, MCPExternalAuthConfig)
        assert tc is None or isinstance(tc, MCPToolConfig)
        wanted = reads(server, ext)
        configmaps = {
            name: data
            for name in wanted.configmaps
            if (data := _data(by_key, "ConfigMap", ns, name)) is not None
        }
        secret_keys: dict[str, frozenset[str]] | None = {}
        for name in wanted.secrets:
            keys = _secret_keys(by_key, ns, name)
            if keys is None:  # not among the manifests: thv render cannot know, assume present
                secret_keys = None
                break
            if secret_keys is not None:
                secret_keys[name] = keys
        inputs = Inputs(
            server=server, external_auth=ext, tool_config=tc, configmaps=configmaps, secret_keys=secret_keys
        )
        result = resolve(inputs, settings)
        if isinstance(result, Unresolved):
            errors.append(f"{label}: {result.reason}: {result.message}")
            continue
        out.extend(result.desired.bodies())
        errors.extend(f"{label}: warning: {w}" for w in result.desired.warnings)
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


def is_warning(error: str) -> bool:
    """An entry of :func:`render_docs`' errors that only warns (the object was rendered)."""
    return ": warning: " in error


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
