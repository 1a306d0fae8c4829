"""The ``--k8s-pod-patch`` JSON: the user's pod template for the MCP server pod, completed.

Upstream ``MCPServerPodTemplateSpecBuilder``: a deep copy of ``spec.podTemplateSpec`` (or an
empty template), with

* ``spec.serviceAccountName`` = ``spec.serviceAccount`` or ``<name>-sa``;
* each ``spec.secrets`` entry as an env var with ``valueFrom.secretKeyRef`` on the container
  named ``mcp``: appended to its ``env`` when the user's template has that container, else a new
  ``{"name": "mcp", "env": [...]}`` container is appended.

Only references to Secrets ever appear; the proxy runner copies the patch onto the StatefulSet.
The JSON is compact with sorted keys (upstream's bytes follow Go struct order, which only its
own comparison ever looked at; the proxy runner needs valid PodTemplateSpec JSON).
"""

from __future__ import annotations

import copy
from typing import Any

from thv.api.crds import MCPServer
from thv.render import names
from thv.render.common import go_json, server_name
from thv.render.errors import REASON_INVALID_POD_TEMPLATE, RenderError

__all__ = ["pod_template_patch", "pod_template_patch_json"]

#: PodSpec fields whose presence makes a patch worth sending (upstream ``isEmpty``, 61c3411a8)
_MEANINGFUL = (
    "serviceAccountName",
    "containers",
    "volumes",
    "initContainers",
    "tolerations",
    "nodeSelector",
    "affinity",
    "securityContext",
    "priorityClassName",
    "imagePullSecrets",
)


def _invalid(problem: str) -> RenderError:
    return RenderError(REASON_INVALID_POD_TEMPLATE, f"Invalid PodTemplateSpec: {problem}")


def _checked_template(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {"metadata": {}, "spec": {"containers": []}}
    if not isinstance(raw, dict):
        raise _invalid("spec.podTemplateSpec must be an object")
    template: dict[str, Any] = copy.deepcopy(raw)
    meta = template.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise _invalid("metadata must be an object")
    spec = template.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise _invalid("spec must be an object")
    containers = spec.setdefault("containers", [])
    if not isinstance(containers, list):
        raise _invalid("spec.containers must be a list")
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not isinstance(container.get("name", ""), str):
            raise _invalid(f"spec.containers[{index}] must be an object with a string name")
        if not isinstance(container.get("env", []), list):
            raise _invalid(f"spec.containers[{index}].env must be a list")
    return template


def pod_template_patch(server: MCPServer) -> dict[str, Any] | None:
    """The completed pod template patch, or ``None`` when it carries nothing (never in practice:
    the service account name is always set unless ``spec.serviceAccount`` is ``""``)."""
    template = _checked_template(server.spec.pod_template_spec)
    spec: dict[str, Any] = template["spec"]
    account = server.spec.service_account
    if account is None:
        account = names.mcp_service_account_name(server_name(server))
    if account:
        spec["serviceAccountName"] = account
    secret_env = [
        {
            "name": secret.target_env_name or secret.key,
            "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}},
        }
        for secret in server.spec.secrets or []
    ]
    if secret_env:
        containers: list[dict[str, Any]] = spec["containers"]
        mcp = next((c for c in containers if c.get("name") == names.MCP_CONTAINER), None)
        if mcp is None:
            containers.append({"name": names.MCP_CONTAINER, "env": secret_env})
        else:
            mcp["env"] = [*(mcp.get("env") or []), *secret_env]
    if not any(spec.get(field) for field in _MEANINGFUL):
        return None
    return template


def pod_template_patch_json(server: MCPServer) -> str | None:
    """:func:`pod_template_patch` as compact JSON (sorted keys, Go's escaping), or ``None``."""
    patch = pod_template_patch(server)
    return go_json(patch) if patch is not None else None
