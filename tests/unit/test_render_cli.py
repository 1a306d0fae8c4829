"""``thv render`` on a mix of good and bad manifests: every valid server is rendered, each bad
object is reported once by kind/namespace/name with its reason, and the exit status is non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from thv.cli import main

GOOD = """
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: good}
spec: {image: img:1, transport: stdio}
"""
# no name: upstream's own manifests never lack one, but a half-written file does
NAMELESS = """
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {namespace: team}
spec: {image: img:1}
"""
# upstream's external-auth examples use snake_case keys under tokenExchange (reference §15)
SNAKE_CASE = """
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPExternalAuthConfig
metadata: {name: snake}
spec:
  type: tokenExchange
  tokenExchange:
    token_url: https://idp.example.com/token
    client_id: mcp
    audience: backend
    scope: openid
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: uses-snake}
spec: {image: img:1, externalAuthConfigRef: {name: snake}}
"""
BAD_SPEC = """
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: bad-spec, namespace: team}
spec: {image: 7}
"""
MISSING_REF = """
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {name: dangling}
spec: {image: img:1, toolConfigRef: {name: nowhere}}
"""
UNRENDERABLE = f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata: {{name: {"x" * 60}}}
spec: {{image: img:1}}
"""


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *texts: str) -> tuple[int, list[str], list[str]]:
    path = tmp_path / "in.yaml"
    path.write_text("\n---\n".join(texts))
    code = main(["render", "-f", str(path)])
    out, err = capsys.readouterr()
    rendered = [f"{d['kind']}/{d['metadata']['name']}" for d in yaml.safe_load_all(out) if d]
    return code, rendered, err.strip().splitlines()


def test_every_bad_object_is_named_and_the_good_ones_rendered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rendered, err = run(
        tmp_path, capsys, GOOD, NAMELESS, SNAKE_CASE, BAD_SPEC, MISSING_REF, UNRENDERABLE
    )
    assert code == 1
    assert "Deployment/good" in rendered and "Service/mcp-good-proxy" in rendered
    assert {r.split("/")[1] for r in rendered if r.startswith("Deployment/")} == {"good"}
    assert "Traceback" not in "\n".join(err)
    assert len(err) == 6, err
    expect = [
        "thv render: MCPServer team/<document 2>: metadata.name is required",
        "thv render: MCPExternalAuthConfig default/snake: invalid: Object missing required field `tokenUrl`",
        "thv render: MCPServer default/uses-snake: references MCPExternalAuthConfig default/snake, which is invalid",
        "thv render: MCPServer team/bad-spec: invalid: Expected `str`, got `int` - at `$.spec.image`",
        "thv render: MCPServer default/dangling: ToolConfigNotFound: MCPToolConfig nowhere not found in namespace default",
        f"thv render: MCPServer default/{'x' * 60}: InvalidName:",
    ]
    for line in expect:
        assert any(e.startswith(line) for e in err), (line, err)


def test_only_good_objects_exit_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rendered, err = run(tmp_path, capsys, GOOD)
    assert (code, err) == (0, [])
    assert "Deployment/good" in rendered


def test_a_file_that_is_not_yaml_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(tmp_path, capsys, GOOD, "kind: [unclosed")
    assert code == 1
    assert len(err) == 1 and "not YAML" in err[0], err
