"""Generate the ToolHive CustomResourceDefinitions from :mod:`thv.api.crds`.

``python -m thv.crdgen`` writes ``crds/toolhive.stacklok.dev_<plural>.yaml``;
``python -m thv.crdgen --check`` exits 1 with a unified diff when the files are stale.

msgspec emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema.
:func:`structural` converts one into the other:

* every ``$ref`` is inlined (recursive types are refused), ``title`` is dropped;
* ``anyOf: [X, {"type": "null"}]`` becomes ``X`` (a ``null`` sent by a client is pruned by the
  apiserver, which matches Go's ``omitempty`` pointers); ``anyOf`` of int and string becomes
  ``x-kubernetes-int-or-string``; any other union is refused;
* ``default: null``/``[]``/``{}`` are dropped: only upstream ``+kubebuilder:default`` values,
  which are the Python defaults, remain;
* ``additionalProperties: false`` and empty ``required`` are dropped;
* ``Any`` and untyped objects get ``x-kubernetes-preserve-unknown-fields: true``;
* integers without a format get ``format: int64`` (``Int32``/``Port`` carry ``int32``);
* numeric ``exclusiveMinimum``/``exclusiveMaximum`` become the v3.0 boolean form.

List, map and CEL markers (``x-kubernetes-list-type``, ``x-kubernetes-map-type``,
``x-kubernetes-validations``) come from ``extra_json_schema`` in :mod:`thv.api.crds`.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml

from thv.api.crds import MCPExternalAuthConfig, MCPServer, MCPToolConfig
from thv.api.meta import ResourceInfo

__all__ = [
    "CRD_DIR",
    "CRDSpec",
    "NonStructuralError",
    "crd_object",
    "crd_objects",
    "file_name",
    "main",
    "render_crds",
    "structural",
]

#: ``crds/`` at the repository root
CRD_DIR = Path(__file__).resolve().parents[2] / "crds"

_REF_PREFIX = "#/$defs/"
_DROP_KEYS = frozenset({"title", "$schema", "$defs", "examples", "readOnly", "writeOnly"})
_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}


class NonStructuralError(ValueError):
    """The msgspec schema holds a construct that has no structural equivalent."""


@dataclass(frozen=True, slots=True)
class CRDSpec:
    """One custom resource: its Struct and the CRD-level settings not derivable from it."""

    type: type[msgspec.Struct]
    printer_columns: tuple[Mapping[str, str], ...]

    @property
    def info(self) -> ResourceInfo:
        info: ResourceInfo = self.type.RESOURCE  # type: ignore[attr-defined]
        return info


CRD_SPECS: tuple[CRDSpec, ...] = (
    CRDSpec(
        MCPServer,
        (
            {"jsonPath": ".status.phase", "name": "Status", "type": "string"},
            {"jsonPath": ".status.url", "name": "URL", "type": "string"},
            _AGE,
        ),
    ),
    CRDSpec(
        MCPToolConfig,
        (
            {"jsonPath": ".spec.toolsFilter[*]", "name": "Filter Count", "type": "integer"},
            {"jsonPath": ".spec.toolsOverride", "name": "Override Count", "type": "integer"},
            {"jsonPath": ".status.referencingServers", "name": "Referenced By", "type": "string"},
            _AGE,
        ),
    ),
    CRDSpec(
        MCPExternalAuthConfig,
        (
            {"jsonPath": ".spec.type", "name": "Type", "type": "string"},
            {"jsonPath": ".status.configHash", "name": "Hash", "type": "string"},
            _AGE,
        ),
    ),
)


def _ref_name(ref: str) -> str:
    if not ref.startswith(_REF_PREFIX):
        raise NonStructuralError(f"unsupported $ref {ref!r}")
    return ref[len(_REF_PREFIX) :]


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null" and len(node) == 1


def structural(
    node: Mapping[str, Any], defs: Mapping[str, Mapping[str, Any]], _stack: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Turn one msgspec JSON Schema node (with its ``$defs``) into a structural CRD schema node."""
    src = dict(node)
    if "$ref" in src:
        name = _ref_name(src.pop("$ref"))
        if name in _stack:
            raise NonStructuralError(f"recursive type {' -> '.join((*_stack, name))}")
        # keys written next to the $ref (field description, extras) win over the type's own
        return structural({**defs[name], **src}, defs, (*_stack, name))

    if "anyOf" in src:
        variants = [v for v in src.pop("anyOf") if not _is_null(v)]
        if len(variants) == 1:
            return structural({**variants[0], **src}, defs, _stack)
        types = sorted(str(v.get("type")) for v in variants)
        if types == ["integer", "string"]:
            return structural({**src, "x-kubernetes-int-or-string": True}, defs, _stack)
        raise NonStructuralError(f"union of {types} has no structural form")
    for bad in ("oneOf", "allOf", "not", "prefixItems", "discriminator", "propertyNames"):
        if bad in src:
            raise NonStructuralError(f"{bad!r} is not supported in a CRD schema")

    out: dict[str, Any] = {}
    for key, value in src.items():
        if key in _DROP_KEYS:
            continue
        if key == "default" and (value is None or value == [] or value == {}):
            continue
        if key == "required":
            if value:
                out[key] = list(value)
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs, _stack)
            continue
        if key == "properties":
            out[key] = {k: structural(v, defs, _stack) for k, v in value.items()}
            continue
        if key == "items":
            if not isinstance(value, dict):
                raise NonStructuralError("tuple-typed arrays are not supported")
            out[key] = structural(value, defs, _stack)
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "uniqueItems":
            out["x-kubernetes-list-type"] = "set"
            continue
        if key == "contentEncoding":
            out["format"] = "byte"
            continue
        out[key] = copy.deepcopy(value)

    kind = out.get("type")
    untyped = kind is None and not out.get("x-kubernetes-int-or-string")
    free_object = kind == "object" and "properties" not in out and "additionalProperties" not in out
    if untyped or free_object:
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "integer" and "format" not in out:
        out["format"] = "int64"
    return _ordered(out)


_KEY_ORDER = ("description", "type", "format")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """description/type/format first, then the rest alphabetically (stable, diff-friendly)."""
    head = [k for k in _KEY_ORDER if k in node]
    tail = sorted(k for k in node if k not in _KEY_ORDER)
    return {k: node[k] for k in (*head, *tail)}


def _root_schema(cls: type[msgspec.Struct]) -> dict[str, Any]:
    (root,), defs = msgspec.json.schema_components([cls], ref_template=_REF_PREFIX + "{name}")
    schema = structural(root, defs)
    props: dict[str, Any] = schema["properties"]
    props["apiVersion"] = {
        "description": "APIVersion defines the versioned schema of this representation of an object.",
        "type": "string",
    }
    props["kind"] = {
        "description": "Kind is a string value representing the REST resource this object represents.",
        "type": "string",
    }
    # the apiserver owns metadata validation; a CRD may only restrict name/generateName
    props["metadata"] = {"type": "object"}
    return schema


def crd_object(spec: CRDSpec) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, as a plain dict."""
    info = spec.info
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "plural": info.plural,
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    names["singular"] = info.singular
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {
            "group": info.group,
            "names": names,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": [
                {
                    "additionalPrinterColumns": [dict(c) for c in spec.printer_columns],
                    "name": info.version,
                    "schema": {"openAPIV3Schema": _root_schema(spec.type)},
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def crd_objects() -> list[dict[str, Any]]:
    """Every thv CRD, as plain dicts (for server-side apply)."""
    return [crd_object(s) for s in CRD_SPECS]


def file_name(info: ResourceInfo) -> str:
    """``toolhive.stacklok.dev_<plural>.yaml``, as upstream names its CRD files."""
    return f"{info.group}_{info.plural}.yaml"


def render_crds() -> dict[str, str]:
    """File name -> YAML text (each a ``---``-prefixed document) for every CRD."""
    return {
        file_name(s.info): "---\n" + yaml.safe_dump(crd_object(s), sort_keys=False, width=100)
        for s in CRD_SPECS
    }


def _diff(path: Path, want: str) -> str:
    have = path.read_text() if path.exists() else ""
    if have == want:
        return ""
    return "".join(
        difflib.unified_diff(
            have.splitlines(keepends=True), want.splitlines(keepends=True), str(path), f"{path} (generated)"
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CRD files, or with ``--check`` report (exit 1) when they are stale."""
    parser = argparse.ArgumentParser(prog="python -m thv.crdgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if crds/ is stale")
    parser.add_argument("--out", type=Path, default=CRD_DIR, help="output directory (default: crds/)")
    args = parser.parse_args(argv)
    out: Path = args.out
    rendered = render_crds()
    if args.check:
        diffs = [d for name, text in rendered.items() if (d := _diff(out / name, text))]
        for d in diffs:
            sys.stdout.write(d)
        if diffs:
            print("CRDs are stale: run `python -m thv.crdgen`", file=sys.stderr)
            return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text)
        print(out / name, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
