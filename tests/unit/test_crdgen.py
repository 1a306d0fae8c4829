"""thv.crdgen: crds/ is current, the schemas are structural and carry upstream's contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from thv import crdgen
from thv.api.crds import MCPServerSpec

FILES = (
    "toolhive.stacklok.dev_mcpservers.yaml",
    "toolhive.stacklok.dev_mcptoolconfigs.yaml",
    "toolhive.stacklok.dev_mcpexternalauthconfigs.yaml",
)


def _crd(plural: str) -> dict[str, Any]:
    (obj,) = [o for o in crdgen.crd_objects() if o["spec"]["names"]["plural"] == plural]
    return obj


def _schema(plural: str) -> dict[str, Any]:
    schema: dict[str, Any] = _crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def test_crds_on_disk_are_current() -> None:
    """Fails when thv.api.crds changed without `python -m thv.crdgen`."""
    rendered = crdgen.render_crds()
    assert sorted(rendered) == sorted(FILES)
    for name, text in rendered.items():
        on_disk = crdgen.CRD_DIR / name
        assert on_disk.exists(), f"{on_disk} missing: run `python -m thv.crdgen`"
        assert on_disk.read_text() == text, f"{on_disk} is stale: run `python -m thv.crdgen`"


def test_rendering_is_stable() -> None:
    assert crdgen.render_crds() == crdgen.render_crds()
    for name, text in crdgen.render_crds().items():
        assert text.startswith("---\n"), name
        (doc,) = list(yaml.safe_load_all(text))
        assert doc == next(
            o for o in crdgen.crd_objects() if name.endswith(f"_{o['spec']['names']['plural']}.yaml")
        )


def test_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert "+++" in capsys.readouterr().out
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / FILES[0]
    stale.write_text(stale.read_text().replace("mcpserver", "mcpservr"))
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    assert "mcpservr" in capsys.readouterr().out


ALLOWED_KEYS = {
    "description",
    "type",
    "format",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "pattern",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}


@pytest.mark.parametrize("plural", ["mcpservers", "mcptoolconfigs", "mcpexternalauthconfigs"])
def test_schema_is_structural(plural: str) -> None:
    root = _schema(plural)
    assert root["type"] == "object"
    assert root["properties"]["metadata"] == {"type": "object"}
    for path, node in _walk(root):
        assert set(node) <= ALLOWED_KEYS, f"{path}: {set(node) - ALLOWED_KEYS}"
        assert (
            "type" in node
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ), f"{path}: no type"
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{path}: array without items"
            assert node.get("x-kubernetes-list-type") in ("atomic", "map", "set"), path
        if node.get("type") == "integer":
            assert node.get("format") in ("int32", "int64"), path
        if "required" in node:
            assert node["required"] and set(node["required"]) <= set(node["properties"]), path
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            assert set(node["x-kubernetes-list-map-keys"]) <= set(item["required"]), path
        if "default" in node:
            assert node["default"] is not None, path
        for rule in node.get("x-kubernetes-validations", ()):
            assert set(rule) == {"rule", "message"} and rule["rule"] and rule["message"], path
    text = yaml.safe_dump(root)
    for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "uniqueItems", "'null'"):
        assert forbidden not in text, forbidden


def test_only_upstream_defaults_are_declared() -> None:
    defaults = {p: n["default"] for p, n in _walk(_schema("mcpservers")) if "default" in n}
    assert defaults == {
        ".spec.transport": "stdio",
        ".spec.proxyMode": "sse",
        ".spec.port": 8080,
        ".spec.volumes[].readOnly": False,
        ".spec.permissionProfile.type": "builtin",
        ".spec.oidcConfig.type": "kubernetes",
        ".spec.oidcConfig.kubernetes.audience": "toolhive",
        ".spec.oidcConfig.kubernetes.issuer": "https://kubernetes.default.svc",
        ".spec.oidcConfig.configMap.key": "oidc.json",
        ".spec.oidcConfig.inline.jwksAllowPrivateIP": False,
        ".spec.authzConfig.type": "configMap",
        ".spec.authzConfig.configMap.key": "authz.json",
        ".spec.authzConfig.inline.entitiesJson": "[]",
        ".spec.audit.enabled": False,
        ".spec.telemetry.openTelemetry.enabled": False,
        ".spec.telemetry.openTelemetry.insecure": False,
        ".spec.telemetry.openTelemetry.metrics.enabled": False,
        ".spec.telemetry.openTelemetry.tracing.enabled": False,
        ".spec.telemetry.openTelemetry.tracing.samplingRate": "0.05",
        ".spec.telemetry.prometheus.enabled": False,
        ".spec.trustProxyHeaders": False,
    }
    for plural in ("mcptoolconfigs", "mcpexternalauthconfigs"):
        assert not [p for p, n in _walk(_schema(plural)) if "default" in n]


def test_mcpserver_spec_schema_has_every_field() -> None:
    spec = _schema("mcpservers")["properties"]["spec"]
    assert set(spec["properties"]) == {f.encode_name for f in msgspec.structs.fields(MCPServerSpec)}
    assert spec["required"] == ["image"]
    assert spec["properties"]["podTemplateSpec"] == {
        "description": spec["properties"]["podTemplateSpec"]["description"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    for port in ("port", "targetPort", "proxyPort", "mcpPort"):
        p = spec["properties"][port]
        assert (p["type"], p["format"], p["minimum"], p["maximum"]) == ("integer", "int32", 1, 65535)
    assert spec["properties"]["transport"]["enum"] == ["stdio", "streamable-http", "sse"]
    assert spec["properties"]["proxyMode"]["enum"] == ["sse", "streamable-http"]
    for ref in ("toolConfigRef", "externalAuthConfigRef"):
        node = spec["properties"][ref]
        assert set(node["properties"]) == {"name"} and node["required"] == ["name"]
    inline = spec["properties"]["oidcConfig"]["properties"]["inline"]["properties"]
    assert {"thvCABundlePath", "jwksAllowPrivateIP", "insecureAllowHTTP"} <= set(inline)
    policies = spec["properties"]["authzConfig"]["properties"]["inline"]["properties"]["policies"]
    assert policies["minItems"] == 1
    status = _schema("mcpservers")["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == ["Pending", "Running", "Failed", "Terminating"]
    assert set(status) == {
        "conditions",
        "toolConfigHash",
        "externalAuthConfigHash",
        "url",
        "phase",
        "message",
        "observedGeneration",
    }


def test_external_auth_schema() -> None:
    root = _schema("mcpexternalauthconfigs")
    spec = root["properties"]["spec"]
    assert spec["required"] == ["type"]
    assert spec["properties"]["type"]["enum"] == ["tokenExchange"]
    assert spec["x-kubernetes-validations"] == [
        {
            "rule": "self.type != 'tokenExchange' || has(self.tokenExchange)",
            "message": "tokenExchange is required when type is tokenExchange",
        }
    ]
    te = spec["properties"]["tokenExchange"]
    assert te["required"] == ["tokenUrl", "audience"]
    assert set(te["properties"]) == {
        "tokenUrl",
        "clientId",
        "clientSecretRef",
        "audience",
        "scopes",
        "subjectTokenType",
        "externalTokenHeaderName",
    }
    assert "headerStrategy" not in te["properties"]
    assert te["properties"]["clientSecretRef"]["required"] == ["name", "key"]
    assert te["properties"]["subjectTokenType"]["pattern"] == (
        "^(access_token|id_token|jwt|urn:ietf:params:oauth:token-type:(access_token|id_token|jwt))?$"
    )
    assert set(root["properties"]["status"]["properties"]) == {
        "observedGeneration",
        "configHash",
        "conditions",
    }


def test_tool_config_schema() -> None:
    spec = _schema("mcptoolconfigs")["properties"]["spec"]
    override = spec["properties"]["toolsOverride"]["additionalProperties"]
    assert set(override["properties"]) == {"name", "description"}
    assert override["x-kubernetes-validations"][0]["rule"] == "has(self.name) || has(self.description)"
    status = _schema("mcptoolconfigs")["properties"]["status"]["properties"]
    assert set(status) == {"observedGeneration", "configHash", "referencingServers"}


def test_crd_metadata_matches_upstream() -> None:
    expected = {
        "mcpservers": ("MCPServer", None, ["Status", "URL", "Age"]),
        "mcptoolconfigs": (
            "MCPToolConfig",
            ["tc", "toolconfig"],
            ["Filter Count", "Override Count", "Referenced By", "Age"],
        ),
        "mcpexternalauthconfigs": (
            "MCPExternalAuthConfig",
            ["extauth", "mcpextauth"],
            ["Type", "Hash", "Age"],
        ),
    }
    for plural, (kind, short, columns) in expected.items():
        crd = _crd(plural)
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{plural}.toolhive.stacklok.dev"
        spec = crd["spec"]
        assert spec["group"] == "toolhive.stacklok.dev" and spec["scope"] == "Namespaced"
        assert spec["names"]["kind"] == kind and spec["names"]["listKind"] == f"{kind}List"
        assert spec["names"]["singular"] == plural[:-1]
        assert spec["names"].get("shortNames") == short
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns


class _Node(msgspec.Struct):
    child: _Node | None = None


class _Union(msgspec.Struct):
    value: int | list[str]


def test_non_structural_constructs_are_refused() -> None:
    for cls in (_Node, _Union):
        (root,), defs = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
        with pytest.raises(crdgen.NonStructuralError):
            crdgen.structural(root, defs)


def test_conversions() -> None:
    conv = crdgen.structural(
        {
            "type": "object",
            "title": "X",
            "additionalProperties": False,
            "required": [],
            "properties": {
                "n": {
                    "anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}],
                    "default": None,
                },
                "any": {},
                "raw": {"type": "object"},
                "ios": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "set": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            },
        },
        {},
    )
    props = conv["properties"]
    assert set(conv) == {"type", "properties"}
    assert props["n"] == {"type": "integer", "format": "int64", "minimum": 0, "exclusiveMinimum": True}
    assert props["any"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert props["raw"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["ios"] == {"x-kubernetes-int-or-string": True}
    assert props["set"]["x-kubernetes-list-type"] == "set" and "uniqueItems" not in props["set"]
