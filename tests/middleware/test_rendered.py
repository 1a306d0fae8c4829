"""What the operator renders takes effect: an MCPServer with an MCPToolConfig, inline Cedar
policies, audit and telemetry, rendered in flag mode and in ConfigMap mode, parsed by the runner's
own parser, builds the chain that the SDK client then meets. A policy that does not parse stops
``thv proxy --runconfig`` and ``thv-runner`` with a message naming it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import msgspec
import pytest
import yaml
from mcp.shared.exceptions import MCPError
from mw_testlib import first_text, running, session

from thv.api.crds import MCPServer, MCPToolConfig
from thv.middleware.authz import AuthzError
from thv.middleware.chain import build_chain, chain_from_runconfig
from thv.render.desired import Desired, render
from thv.render.settings import OperatorSettings
from thv.runner.config import RunnerConfig, runner_config

SPEC = """
image: ghcr.io/example/demo:1
transport: streamable-http
mcpPort: 9090
toolConfigRef: {name: tc}
audit: {enabled: true}
authzConfig:
  type: inline
  inline:
    policies:
      - 'permit(principal, action == Action::"call_tool", resource);'
      - 'forbid(principal, action == Action::"call_tool", resource == Tool::"add") unless { principal has claim_groups && principal.claim_groups.contains("eng") };'
telemetry:
  prometheus: {enabled: true}
"""


def _server(spec: str) -> MCPServer:
    doc = yaml.safe_load(
        "apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: demo, namespace: ns}\n"
        "spec:\n" + "\n".join("  " + line for line in spec.strip().splitlines())
    )
    return msgspec.convert(doc, MCPServer)


TOOLS = msgspec.convert(
    {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPToolConfig",
        "metadata": {"name": "tc", "namespace": "ns"},
        "spec": {
            "toolsFilter": ["say", "add"],
            "toolsOverride": {"echo": {"name": "say", "description": "Say."}},
        },
    },
    MCPToolConfig,
)


def _runner_config(d: Desired, tmp_path: Path) -> RunnerConfig:
    argv = list(d.args[1:])
    if d.use_configmap:
        assert d.runconfig_configmap is not None and d.runconfig_configmap.data is not None
        path = tmp_path / "runconfig.json"
        path.write_text(d.runconfig_configmap.data["runconfig.json"])
        return runner_config(["--runconfig", str(path), *argv], env={}, runconfig_paths=())[1]
    # flag mode: --authz-config names the mounted inline ConfigMap; put its file where the test runs
    assert d.authz_configmap is not None and d.authz_configmap.data is not None
    authz = tmp_path / "authz.json"
    authz.write_text(d.authz_configmap.data["authz.json"])
    argv = [f"--authz-config={authz}" if a.startswith("--authz-config") else a for a in argv]
    return runner_config(argv, env={}, runconfig_paths=())[1]


@pytest.mark.anyio
@pytest.mark.parametrize("configmap", [False, True], ids=["flags", "configmap"])
async def test_rendered_settings_take_effect(configmap: bool, tmp_path: Path) -> None:
    d = render(_server(SPEC), OperatorSettings(use_configmap=configmap), tool_config=TOOLS)
    config = _runner_config(d, tmp_path)
    audit = io.StringIO()
    chain = build_chain(config.middleware, server_name="demo", transport="streamable-http", audit_out=audit)
    assert chain is not None and chain.tool_filter is not None and chain.authorizer is not None
    assert chain.auditor is not None and chain.telemetry is not None and chain.telemetry.serves_metrics
    with running("streamable-http", chain) as url:
        async with session(url, "streamable-http", "bob-token") as s:
            assert [t.name for t in (await s.list_tools()).tools] == ["say"]  # add: forbidden for bob
            assert first_text(await s.call_tool("say", {"text": "x"})) == "x"
            with pytest.raises(MCPError):
                await s.call_tool("add", {"a": 1, "b": 1})
        async with session(url, "streamable-http", "alice-token") as s:
            assert [t.name for t in (await s.list_tools()).tools] == ["say", "add"]
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(url + "/metrics")).text  # no token needed
        assert 'toolhive_mcp_tool_calls_total{server="demo",status="success",tool="echo"} 1.0' in metrics
    events = [json.loads(line) for line in audit.getvalue().splitlines()]
    calls = [
        (e["target"].get("name"), e["outcome"], e["subjects"]["user"])
        for e in events
        if e["type"] == "mcp_tool_call"
    ]
    assert calls == [("echo", "success", "bob@example.com"), ("add", "denied", "bob@example.com")]


def _bad_runconfig(tmp_path: Path) -> Path:
    d = render(
        _server(
            "image: img\nauthzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);']}}"
        ),
        OperatorSettings(use_configmap=True),
    )
    assert d.runconfig_configmap is not None and d.runconfig_configmap.data is not None
    # the operator refuses a policy that does not parse (a condition, no pod): a runconfig
    # edited by hand (or by another operator) may still carry one
    text = d.runconfig_configmap.data["runconfig.json"]
    assert "permit(principal, action, resource);" in text  # authz_config and the middleware's copy
    path = tmp_path / "runconfig.json"
    path.write_text(
        text.replace("permit(principal, action, resource);", "permit(principal, action, resource")
    )
    return path


def test_a_policy_that_does_not_parse_stops_the_start(tmp_path: Path) -> None:
    path = _bad_runconfig(tmp_path)
    with pytest.raises(AuthzError, match=r"^authz_config: Cedar policy 0 does not parse: "):
        chain_from_runconfig(str(path))
    done = subprocess.run(
        [sys.executable, "-m", "thv", "proxy", "--runconfig", str(path), "--target", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "thv proxy: error: authz_config: Cedar policy 0 does not parse" in done.stderr
