"""The one gatherer for manifest files: the user's own documents (MCPServer, MCPExternalAuthConfig,
MCPToolConfig, ConfigMaps, Secrets) → :class:`~thv.render.resolve.Inputs` per server → the pure
:func:`~thv.render.resolve.resolve`. Pure (text and mappings in, objects and errors out).

Used by ``thv render`` (``thv.operator.offline`` reads the files) and by the runner's
``thv-runner run --dry-run --manifest`` (``thv.runner.cli``), so both see the same objects the
operator would write.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import yaml

from thv.api.crds import ExternalAuthConfigRef, MCPExternalAuthConfig, MCPServer, MCPToolConfig, ToolConfigRef
from thv.render.resolve import Inputs, Unresolved, reads, resolve
from thv.render.settings import OperatorSettings

#: the kinds a user writes and :func:`render_docs` resolves (everything else passes by)
INPUT_KINDS: Final = frozenset({"MCPServer", "MCPExternalAuthConfig", "MCPToolConfig"})

_Key = tuple[str, str, str]


def parse_documents(text: str, label: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The mapping documents of one file's ``text``, or one error naming ``label`` if it is not YAML."""
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)], []
    except yaml.YAMLError as exc:
        return [], [f"{label}: not YAML: {' '.join(str(exc).split())}"]


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
    configs: dict[_Key, MCPExternalAuthConfig | MCPToolConfig | str],
    kind: str,
    ns: str,
    ref: ExternalAuthConfigRef | ToolConfigRef | None,
) -> MCPExternalAuthConfig | MCPToolConfig | None:
    found = configs.get((kind, ns, ref.name)) if ref is not None else None
    return None if isinstance(found, str) else found


def _data(by_key: dict[_Key, dict[str, Any]], kind: str, ns: str, name: str) -> dict[str, str] | None:
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


def _secret_keys(by_key: dict[_Key, dict[str, Any]], ns: str, name: str) -> frozenset[str] | None:
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
    errors containing ``warning:`` (:func:`is_warning`).
    """
    errors: list[str] = []
    by_key: dict[_Key, dict[str, Any]] = {}
    configs: dict[_Key, MCPExternalAuthConfig | MCPToolConfig | str] = {}
    for i, d in enumerate(docs):
        kind = d.get("kind")
        kind = kind if isinstance(kind, str) else ""
        ns, name = _doc_namespace(d, namespace), _doc_name(d)
        if kind in INPUT_KINDS and not name:
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
            if keys is None:  # not among the manifests: the files cannot say, assume present
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


def is_warning(error: str) -> bool:
    """An entry of :func:`render_docs`' errors that only warns (the object was rendered)."""
    return ": warning: " in error
