"""The upstream chainsaw scenario ``external-auth-configmap`` (reference §14), asserted on the rendered
objects exactly as chainsaw asserts on the cluster: label selection, jq checks on runconfig.json,
the env var at ``containers[0]``, the pod label. Also after the scenario's switch back to flag mode."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from thv.api.crds import MCPExternalAuthConfig, MCPServer
from thv.render.desired import Desired, render
from thv.render.settings import OperatorSettings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chainsaw-external-auth.yaml"
_DOCS = {d["kind"]: d for d in yaml.safe_load_all(FIXTURE.read_text()) if d}
SECRET = _DOCS["Secret"]


def _extauth() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(_DOCS["MCPExternalAuthConfig"])
    doc["status"] = {"configHash": "5f0c1a2b"}  # set by the operator on a live cluster
    return doc


def _mcpserver() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(_DOCS["MCPServer"])
    doc["metadata"]["uid"] = "0f4b2c8e-0000-4000-8000-000000000001"  # set by the API server
    return doc


def scenario(use_configmap: bool) -> Desired:
    ext = msgspec.convert(_extauth(), MCPExternalAuthConfig)
    srv = msgspec.convert(_mcpserver(), MCPServer)
    return render(srv, OperatorSettings(use_configmap=use_configmap), external_auth=ext)


def select(d: Desired, kind: str, label: str) -> list[dict[str, Any]]:
    """``kubectl get <kind> -l k=v -o json | .items``."""
    key, value = label.split("=", 1)
    return [
        b for b in d.bodies() if b["kind"] == kind and (b["metadata"].get("labels") or {}).get(key) == value
    ]


def by_name(d: Desired, kind: str, name: str) -> dict[str, Any]:
    found = [b for b in d.bodies() if b["kind"] == kind and b["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def jq_alt_empty(value: Any) -> str:
    """jq ``. // empty``, printed the way chainsaw's shell compares it."""
    return "" if value is None or value is False else str(value)


def test_step8_runconfig_configmap_by_label_and_jq_checks() -> None:
    d = scenario(use_configmap=True)
    items = select(d, "ConfigMap", "toolhive.stacklok.io/mcp-server=external-auth-test")
    assert len(items) >= 1
    runconfig_json = items[0]["data"]["runconfig.json"]
    assert runconfig_json
    rc = json.loads(runconfig_json)
    assert "middleware_configs" in rc
    te_entries = [
        m["parameters"]["token_exchange_config"]
        for m in rc["middleware_configs"]
        if m["type"] == "tokenexchange"
    ]
    assert len(te_entries) == 1
    te = te_entries[0]
    assert te  # non-empty
    assert te["token_url"] == "https://oauth.example.com/token"
    assert te["client_id"] == "test-client-id"
    assert te["audience"] == "mcp-backend"
    assert " ".join(te["scopes"]) == "read write"
    assert te["external_token_header_name"] == "X-Upstream-Token"
    assert te["header_strategy"] == "custom"
    assert jq_alt_empty(te.get("client_secret")) == ""


def test_step9_deployment_env_at_containers_0() -> None:
    for use_configmap in (True, False):
        d = scenario(use_configmap)
        deployment = by_name(d, "Deployment", "external-auth-test")
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        matches = [e for e in env if e["name"] == "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"]
        assert len(matches) == 1
        assert matches[0]["valueFrom"]["secretKeyRef"]["name"] == "oauth-test-secret"
        assert matches[0]["valueFrom"]["secretKeyRef"]["key"] == "client-secret"
        assert "value" not in matches[0]


def test_step6_pods_carry_the_instance_label() -> None:
    deployment = by_name(scenario(True), "Deployment", "external-auth-test")
    assert (
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]
        == "external-auth-test"
    )
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "external-auth-test"


def test_step7_hash_rolls_the_pods() -> None:
    deployment = by_name(scenario(True), "Deployment", "external-auth-test")
    assert deployment["spec"]["template"]["metadata"]["annotations"][
        "toolhive.stacklok.dev/externalauthconfig-hash"
    ] == ("5f0c1a2b")


def test_representative_runconfig_of_the_reference() -> None:
    """Reference §7.3's hand-derived runconfig.json, with the #2537 fix (full chain, top-level config)."""
    rc = json.loads(scenario(True).run_config_json())
    expected_te = {
        "token_url": "https://oauth.example.com/token",
        "client_id": "test-client-id",
        "client_secret": "",
        "audience": "mcp-backend",
        "scopes": ["read", "write"],
        "header_strategy": "custom",
        "external_token_header_name": "X-Upstream-Token",
    }
    assert rc == {
        "schema_version": "v0.1.0",
        "image": "ghcr.io/stackloklabs/yardstick/yardstick-server:0.0.2",
        "name": "external-auth-test",
        "container_name": "external-auth-test",
        "base_name": "external-auth-test",
        "transport": "stdio",
        "host": "0.0.0.0",
        "port": 8080,
        "permission_profile_name_or_path": "network",
        "permission_profile": {
            "name": "network",
            "network": {"outbound": {"insecure_allow_all": True}, "inbound": {}},
        },
        "env_vars": {"MCP_TRANSPORT": "stdio"},
        "container_labels": {
            "toolhive": "true",
            "toolhive-basename": "external-auth-test",
            "toolhive-name": "external-auth-test",
            "toolhive-port": "8080",
            "toolhive-tool-type": "mcp",
            "toolhive-transport": "stdio",
        },
        "token_exchange_config": expected_te,
        "proxy_mode": "sse",
        "middleware_configs": [
            {"type": "auth", "parameters": {}},
            {"type": "tokenexchange", "parameters": {"token_exchange_config": expected_te}},
            {"type": "mcp-parser", "parameters": {}},
        ],
    }


def test_step10_cleanup_in_flag_mode_deletes_the_runconfig_configmap() -> None:
    d = scenario(use_configmap=False)
    assert select(d, "ConfigMap", "toolhive.stacklok.io/mcp-server=external-auth-test") == []
    assert ("ConfigMap", "external-auth-test-runconfig") in d.unwanted
    args = by_name(d, "Deployment", "external-auth-test")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--token-exchange-url=https://oauth.example.com/token" in args
    assert "--token-exchange-scopes=read,write" in args


@pytest.mark.parametrize("use_configmap", [True, False])
def test_the_secret_value_is_nowhere(use_configmap: bool) -> None:
    assert SECRET["stringData"]["client-secret"] == "test-secret-value"
    d = scenario(use_configmap)
    assert "test-secret-value" not in json.dumps(d.bodies())
    assert "test-secret-value" not in " ".join(d.args)


# --- the flag-mode twin ---------------------------------------------------------------------
# Upstream's scenario necessarily fails in flag mode: step 8 selects the RunConfig ConfigMap,
# which flag mode does not create. The twin asserts the same facts where flag mode carries them:
# the ``toolhive`` container's args (and, as in step 9, its env).


def flag(args: list[str], name: str) -> list[str]:
    """Values of ``--name=value`` in ``args`` (flag mode spells every flag with ``=``)."""
    return [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]


def test_flag_twin_step8_token_exchange_on_the_deployment_args() -> None:
    d = scenario(use_configmap=False)
    assert select(d, "ConfigMap", "toolhive.stacklok.io/mcp-server=external-auth-test") == []
    deployment = by_name(d, "Deployment", "external-auth-test")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(args, "token-exchange-url") == ["https://oauth.example.com/token"]
    assert flag(args, "token-exchange-client-id") == ["test-client-id"]
    assert flag(args, "token-exchange-audience") == ["mcp-backend"]
    assert " ".join(flag(args, "token-exchange-scopes")[0].split(",")) == "read write"
    # header_strategy "custom" is implied by the header-name flag (the runner derives it)
    assert flag(args, "token-exchange-header-name") == ["X-Upstream-Token"]
    # jq '.client_secret // empty' == "": no secret flag, no secret value anywhere in the args
    assert not [a for a in args if a.startswith("--token-exchange-client-secret")]
    assert "test-secret-value" not in " ".join(args)
    # the image is the last positional argument, as upstream's runner expects
    assert args[-1] == "ghcr.io/stackloklabs/yardstick/yardstick-server:0.0.2"


def test_flag_twin_step9_secret_env_and_steps_6_7() -> None:
    deployment = by_name(scenario(use_configmap=False), "Deployment", "external-auth-test")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "toolhive"
    matches = [e for e in container["env"] if e["name"] == "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"]
    assert matches == [
        {
            "name": "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "oauth-test-secret", "key": "client-secret"}},
        }
    ]
    template = deployment["spec"]["template"]["metadata"]
    assert template["labels"]["app.kubernetes.io/instance"] == "external-auth-test"
    assert template["annotations"]["toolhive.stacklok.dev/externalauthconfig-hash"] == "5f0c1a2b"
    assert "toolhive.stacklok.dev/runconfig-checksum" not in template["annotations"]
    assert not [
        v for v in deployment["spec"]["template"]["spec"].get("volumes") or [] if v["name"] == "runconfig"
    ]
