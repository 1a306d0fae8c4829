"""The inline authorization ConfigMap ``<name>-authz-inline`` (mounted at /etc/toolhive/authz)."""

from __future__ import annotations

from thv.api.crds import AUTHZ_INLINE, MCPServer
from thv.api.k8s import ConfigMap
from thv.render import names
from thv.render.common import go_json, object_meta, server_name

__all__ = ["authz_inline_configmap", "authz_inline_json"]


def authz_inline_json(policies: list[str], entities_json: str) -> str:
    """Upstream's ``authz.json``: ``json.Marshal`` of a map, so keys are sorted and compact,
    ``version`` is ``"1.0"`` (the RunConfig's ``authz_config`` says ``"v1"``), and an empty
    ``entitiesJson`` becomes ``"[]"``."""
    return go_json(
        {
            "cedar": {"entities_json": entities_json or "[]", "policies": list(policies)},
            "type": "cedarv1",
            "version": "1.0",
        }
    )


def authz_inline_configmap(server: MCPServer) -> ConfigMap | None:
    """The ConfigMap for ``authzConfig.type: inline``; ``None`` for any other authz setting."""
    ref = server.spec.authz_config
    if ref is None or ref.type != AUTHZ_INLINE or ref.inline is None:
        return None
    name = server_name(server)
    return ConfigMap(
        metadata=object_meta(
            server, names.authz_inline_configmap_name(name), labels=names.labels_for_inline_authz(name)
        ),
        data={names.AUTHZ_KEY: authz_inline_json(ref.inline.policies, ref.inline.entities_json)},
    )
