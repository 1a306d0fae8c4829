"""Authorization: the inline ConfigMap ``<name>-authz-inline`` (mounted at /etc/toolhive/authz)
and the one Cedar parse (:func:`parse_cedar`) that both the operator (a bad policy is a
condition before any pod starts) and the runner's authorization middleware use."""

from __future__ import annotations

import json

import cedarpy

from thv.api.crds import AUTHZ_INLINE, MCPServer
from thv.api.k8s import ConfigMap
from thv.render import names
from thv.render.common import go_json, object_meta, server_name

__all__ = ["CedarError", "authz_inline_configmap", "authz_inline_json", "parse_cedar"]


class CedarError(ValueError):
    """Cedar policies or entities that do not parse (the message names which, never more)."""


def parse_cedar(policies: list[str], entities_json: str = "[]") -> tuple[cedarpy.PolicySet, str]:
    """The policy set and the normalised entities JSON (an array), or :class:`CedarError`."""
    if not policies:
        raise CedarError("at least one Cedar policy is required")
    for index, policy in enumerate(policies):
        try:
            cedarpy.PolicySet.from_str(policy)
        except ValueError as exc:
            raise CedarError(f"Cedar policy {index} does not parse: {' '.join(str(exc).split())}") from None
    try:
        policy_set = cedarpy.PolicySet.from_str("\n".join(policies))
    except ValueError as exc:  # e.g. two policies with one @id
        raise CedarError(f"Cedar policies do not parse together: {' '.join(str(exc).split())}") from None
    try:
        doc = json.loads(entities_json or "[]")
        if not isinstance(doc, list):
            raise ValueError("entities_json must be a JSON array")
        normalised = json.dumps(doc)
        cedarpy.Entities.from_json_str(normalised)
    except ValueError as exc:
        raise CedarError(f"Cedar entities_json is invalid: {' '.join(str(exc).split())}") from None
    return policy_set, normalised


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
