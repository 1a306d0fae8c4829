"""One MCPServer rendered both ways — flag mode and RunConfig-ConfigMap mode — and what the proxy
container gets from each (its environment as the kubelet builds it, its runner arguments, the
``runconfig.json`` it mounts), for tests that parse the two and compare them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from thv.api.crds import MCPServer
from thv.render.desired import Desired, render
from thv.render.settings import OperatorSettings

#: the values of the Secrets the test servers reference, by (name, key)
SECRETS: Final[Mapping[tuple[str, str], str]] = {
    ("te-secret", "te-key"): "s3cr3t-value",
    ("oidc-secret", "k"): "oidc-s3cr3t",
}


def render_both(server: MCPServer, **refs: Any) -> tuple[Desired, Desired]:
    """(flag mode, ConfigMap mode) of ``server``; ``refs`` are :func:`~thv.render.desired.render`'s
    keyword arguments (``external_auth``, ``tool_config`` …)."""
    flag_mode = render(server, OperatorSettings(use_configmap=False), **refs)
    cm_mode = render(server, OperatorSettings(use_configmap=True), **refs)
    return flag_mode, cm_mode


def container_env(d: Desired, secrets: Mapping[tuple[str, str], str] = SECRETS) -> dict[str, str]:
    """What the kubelet puts in the proxy container's environment (``secretKeyRef`` resolved
    from ``secrets``)."""
    spec = d.deployment.spec
    assert spec is not None and spec.template is not None and spec.template.spec is not None
    containers = spec.template.spec.containers
    assert containers
    env: dict[str, str] = {}
    for var in containers[0].env or []:
        if var.value_from is not None and var.value_from.secret_key_ref is not None:
            ref = var.value_from.secret_key_ref
            env[var.name] = secrets[(ref.name or "", ref.key)]
        elif var.value is not None:
            env[var.name] = var.value
    return env


def runner_argv(d: Desired) -> list[str]:
    """The runner's arguments after ``run``."""
    assert d.args[0] == "run"
    return list(d.args[1:])


def runconfig_json(d: Desired) -> str:
    """The ``runconfig.json`` of a ConfigMap-mode rendering."""
    cm = d.runconfig_configmap
    assert cm is not None and cm.data is not None
    return cm.data["runconfig.json"]
