"""``thv-runner run`` and ``--dry-run``: the workload objects and the effective configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from thv.runner.cli import dry_run_manifests, main
from thv.runner.config import runner_config
from thv.runner.workload import FIELD_MANAGER, JSONObject, headless_service, statefulset, strategic_merge

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def config(*argv: str, env: dict[str, str] | None = None) -> Any:
    return runner_config(list(argv), env=env or {}, runconfig_paths=())[1]


def test_stdio_statefulset_upstream_shape() -> None:
    sts: Any = statefulset(config("--name=srv", "--proxy-port=8080", "img:1", "--", "--flag", "x"), "ns")
    labels = {
        "app": "srv",
        "toolhive": "true",
        "toolhive-basename": "srv",
        "toolhive-name": "srv",
        "toolhive-port": "8080",
        "toolhive-tool-type": "mcp",
        "toolhive-transport": "stdio",
    }
    assert sts["metadata"] == {"name": "srv", "namespace": "ns", "labels": labels}
    spec = sts["spec"]
    assert spec["replicas"] == 1 and spec["serviceName"] == "srv"
    assert spec["selector"] == {"matchLabels": {"app": "srv"}}
    assert spec["template"]["metadata"]["labels"] == labels
    (mcp,) = spec["template"]["spec"]["containers"]
    assert (mcp["name"], mcp["image"], mcp["args"], mcp["stdin"], mcp["tty"]) == (
        "mcp",
        "img:1",
        ["--flag", "x"],
        True,
        False,
    )
    assert mcp["env"] == [{"name": "MCP_TRANSPORT", "value": "stdio"}]
    assert "ports" not in mcp
    assert headless_service(config("--name=srv", "img"), "ns") is None
    assert FIELD_MANAGER == "toolhive-container-manager"


def test_http_transport_headless_service() -> None:
    cfg = config("--name=web", "--transport=streamable-http", "--target-port=9001", "img")
    svc: Any = headless_service(cfg, "ns")
    assert svc is not None
    assert svc["metadata"]["name"] == "mcp-web-headless"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"] == [
        {"name": "port-9001", "port": 9001, "targetPort": 9001, "protocol": "TCP"}
    ]
    sts: Any = statefulset(cfg, "ns")
    mcp = sts["spec"]["template"]["spec"]["containers"][0]
    assert mcp["stdin"] is False and mcp["ports"] == [{"containerPort": 9001, "protocol": "TCP"}]
    assert {"name": "MCP_PORT", "value": "9001"} in mcp["env"]


def test_pod_patch_is_a_strategic_merge_and_cannot_change_what_runs() -> None:
    patch = {
        "metadata": {"labels": {"team": "a", "app": "hijack"}},
        "spec": {
            "serviceAccountName": "srv-sa",
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "containers": [
                {
                    "name": "mcp",
                    "image": "evil:1",
                    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "resources": {"limits": {"cpu": "100m"}},
                },
                {"name": "sidecar", "image": "side:1"},
            ],
        },
    }
    sts: Any = statefulset(
        config(
            "--name=srv", f"--k8s-pod-patch={json.dumps(patch)}", "--env=A=1", "--volume=/h:/d:ro", "img:2"
        ),
        "ns",
    )
    template = sts["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["labels"]["app"] == "srv"  # the runner's selector label wins
    spec = template["spec"]
    assert spec["serviceAccountName"] == "srv-sa" and spec["tolerations"] == [
        {"key": "k", "operator": "Exists"}
    ]
    mcp, sidecar = spec["containers"]
    assert mcp["image"] == "img:2" and sidecar == {"name": "sidecar", "image": "side:1"}
    names = [e["name"] for e in mcp["env"]]
    assert names == ["A", "MCP_TRANSPORT", "TOKEN"]
    assert mcp["resources"] == {"limits": {"cpu": "100m"}}
    assert mcp["securityContext"]["runAsNonRoot"] is True
    assert spec["volumes"] == [{"name": "vol-0", "hostPath": {"path": "/h"}}]
    assert mcp["volumeMounts"] == [{"name": "vol-0", "mountPath": "/d", "readOnly": True}]


def test_strategic_merge_rules() -> None:
    base: JSONObject = {"a": {"b": 1, "c": 2}, "containers": [{"name": "x", "v": 1}], "args": [1, 2]}
    patch: JSONObject = {
        "a": {"c": None, "d": 3},
        "containers": [{"name": "x", "w": 2}, {"name": "y"}],
        "args": [3],
    }
    assert strategic_merge(base, patch) == {
        "a": {"b": 1, "d": 3},
        "containers": [{"name": "x", "v": 1, "w": 2}, {"name": "y"}],
        "args": [3],
    }


def test_privileged_profile_and_builtin_none(tmp_path: Path) -> None:
    sts: Any = statefulset(config("--name=s", "--permission-profile=none", "img"), "ns")
    mcp = sts["spec"]["template"]
    assert mcp["metadata"]["annotations"] == {"toolhive.stacklok.dev/permission-profile": "none"}


def test_dry_run_redacts_and_names_the_source(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET": "super-secret-value"}
    argv = [
        "run",
        "--dry-run",
        "--namespace=team",
        "--name=srv",
        "--transport=sse",
        "--target-port=9",
        "--token-exchange-url=https://idp/token",
        "--token-exchange-audience=backend",
        "img",
    ]
    import os

    old = dict(os.environ)
    os.environ.update(env)
    try:
        assert main(argv) == 0
    finally:
        os.environ.clear()
        os.environ.update(old)
    out = capsys.readouterr().out
    assert "super-secret-value" not in out
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["StatefulSet", "Service", "RunnerConfiguration"]
    effective = docs[-1]
    assert effective["source"] == "flags" and effective["namespace"] == "team"
    assert effective["proxy"]["tokenExchange"]["clientSecret"] == "<redacted>"
    assert effective["proxy"]["target"] == "http://mcp-srv-headless.team.svc.cluster.local:9"


def test_unknown_flag_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--name=x", "--no-such-flag=1", "img"]) == 2
    err = capsys.readouterr().err
    assert err == "thv-runner: error: unknown flag: --no-such-flag\n"
    assert main(["serve"]) == 2


def _render(*extra: str) -> str:
    return subprocess.run(
        [
            str(BIN / "thv"),
            "render",
            "-n",
            "demo",
            "-f",
            str(REPO / "examples/complete-example.yaml"),
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


@pytest.mark.parametrize("mode", [(), ("--use-configmap",)], ids=["flag-mode", "configmap-mode"])
def test_thv_render_piped_to_thv_runner_dry_run_shows_the_exchange(mode: tuple[str, ...]) -> None:
    """The issue's acceptance line: ``thv render`` | ``thv-runner run --dry-run``."""
    rendered = _render(*mode)
    shown = subprocess.run(
        [str(BIN / "thv-runner"), "run", "--dry-run"],
        input=rendered,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "demo-only-secret" not in shown  # the example Secret's value
    docs = list(yaml.safe_load_all(shown))
    assert [d["kind"] for d in docs] == ["StatefulSet", "Service", "RunnerConfiguration"]
    te = docs[-1]["proxy"]["tokenExchange"]
    assert te == {
        "tokenUrl": "https://keycloak.example.com/realms/mcp/protocol/openid-connect/token",
        "clientId": "mcp-proxy",
        "clientSecret": "<redacted>",
        "audience": "mcp-backend",
        "scopes": ["openid"],
        "subjectTokenType": "urn:ietf:params:oauth:token-type:access_token",
        "headerStrategy": "custom",
        "externalTokenHeaderName": "X-Upstream-Authorization",
    }
    assert docs[-1]["source"] == (
        "flags" if not mode else "ConfigMap authenticated-fetch-runconfig (/etc/runconfig/runconfig.json)"
    )
    # the same rendered objects in-process give the same answer
    assert dry_run_manifests(rendered) == shown


def test_owner_reference_from_the_service_account_token() -> None:
    import base64

    from thv.runner.runtime import service_account_owner

    def token(claims: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"e30.{body}.sig"

    bound = {
        "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "srv-proxy-runner", "uid": "u-1"}}
    }
    assert service_account_owner(token(bound)) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "name": "srv-proxy-runner",
        "uid": "u-1",
    }
    assert service_account_owner(token({"sub": "legacy"})) is None
    assert service_account_owner("not-a-jwt") is None
    cfg = config("--name=srv", "--transport=sse", "--target-port=1", "img")
    owner = service_account_owner(token(bound))
    sts: Any = statefulset(cfg, "ns", owner=owner)
    assert sts["metadata"]["ownerReferences"] == [owner]
    svc: Any = headless_service(cfg, "ns", owner)
    assert svc is not None and svc["metadata"]["ownerReferences"] == [owner]


EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def _cli(
    entry: Any,
    argv: list[str],
    stdin: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:
    """(exit status, stdout) of a console script's ``main`` run in-process with ``stdin``."""
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    status = entry(argv)
    return status, capsys.readouterr().out


def _direct_and_piped(
    path: Path | None,
    text: str,
    mode: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[tuple[int, str], tuple[int, str]]:
    """``thv-runner run --dry-run --manifest FILE`` and ``thv render FILE | thv-runner run --dry-run
    --manifest -``, both as (exit status, stdout)."""
    from thv.cli import main as thv_main

    manifest = str(path) if path is not None else "-"
    direct = _cli(main, ["run", "--dry-run", *mode, f"--manifest={manifest}"], text, monkeypatch, capsys)
    _, rendered = _cli(thv_main, ["render", *mode, "-f", manifest], text, monkeypatch, capsys)
    piped = _cli(main, ["run", "--dry-run", "--manifest", "-"], rendered, monkeypatch, capsys)
    return direct, piped


@pytest.mark.parametrize("mode", [(), ("--use-configmap",)], ids=["flag-mode", "configmap-mode"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_dry_run_of_user_manifests_equals_thv_render_piped(
    path: Path, mode: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``thv-runner run --dry-run --manifest examples/x.yaml`` resolves the user's manifests
    through the one resolver: the same as ``thv render examples/x.yaml | thv-runner …``."""
    monkeypatch.delenv("TOOLHIVE_USE_CONFIGMAP", raising=False)
    direct, piped = _direct_and_piped(path, "", mode, monkeypatch, capsys)
    assert direct == piped
    has_server = "kind: MCPServer" in path.read_text()
    # a server whose config is in another file renders nowhere on its own (exit 2 both ways)
    assert direct[0] == (0 if has_server and path.name != "mcpserver-with-external-auth.yaml" else 2)


@pytest.mark.parametrize("mode", [(), ("--use-configmap",)], ids=["flag-mode", "configmap-mode"])
def test_dry_run_of_a_server_with_its_config_from_another_file_shows_the_exchange(
    mode: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOOLHIVE_USE_CONFIGMAP", raising=False)
    text = "\n---\n".join(
        (REPO / "examples" / name).read_text()
        for name in ("mcpexternalauthconfig-basic.yaml", "mcpserver-with-external-auth.yaml")
    )
    direct, piped = _direct_and_piped(None, text, mode, monkeypatch, capsys)
    assert direct == piped and direct[0] == 0
    effective = list(yaml.safe_load_all(direct[1]))[-1]
    assert effective["kind"] == "RunnerConfiguration"
    assert effective["source"] == (
        "flags" if not mode else "ConfigMap fetch-with-auth-runconfig (/etc/runconfig/runconfig.json)"
    )
    te = effective["proxy"]["tokenExchange"]
    assert te["tokenUrl"] and te["clientId"] and te["clientSecret"] == "<redacted>"


def test_dry_run_of_user_manifests_flag_mode_shows_the_exchange(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOOLHIVE_USE_CONFIGMAP", raising=False)
    path = REPO / "examples/complete-example.yaml"
    status, out = _cli(main, ["run", "--dry-run", "--manifest", str(path)], "", monkeypatch, capsys)
    assert status == 0 and "demo-only-secret" not in out
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["StatefulSet", "Service", "RunnerConfiguration"]
    assert docs[-1]["source"] == "flags"
    assert docs[-1]["proxy"]["tokenExchange"]["audience"] == "mcp-backend"
    assert docs[-1]["proxy"]["tokenExchange"]["clientSecret"] == "<redacted>"


def test_dry_run_of_unresolvable_manifests_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "examples/mcpserver-with-external-auth.yaml"
    assert main(["run", "--dry-run", "-f", str(path)]) == 2
    assert capsys.readouterr() == (
        "",
        "thv-runner: error: --manifest: MCPServer default/fetch-with-auth: ExternalAuthConfigNotFound: "
        "MCPExternalAuthConfig oauth-token-exchange not found in namespace default\n",
    )
    assert main(["run", "--use-configmap", "img"]) == 2
    assert capsys.readouterr().err == "thv-runner: error: --use-configmap needs --dry-run --manifest\n"
