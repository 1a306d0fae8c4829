"""Cedar authorization (upstream's ``authorization`` middleware, ``cedarv1``) on ``cedarpy``.

Mapping, as upstream's ``pkg/authz/authorizers/cedar``:

* principal ``Client::"<sub>"`` — ``sub`` of the *validated incoming* token (no validated token, or
  no ``sub`` ⇒ denied); its attributes and the request context carry every claim as
  ``claim_<name>``; ``groups``/``roles``/``cognito:groups`` claims make it a member of
  ``THVGroup::"<group>"``;
* ``tools/call`` → ``Action::"call_tool"`` on ``Tool::"<name>"``; ``prompts/get`` →
  ``Action::"get_prompt"`` on ``Prompt::"<name>"``; ``resources/read`` (and subscribe) →
  ``Action::"read_resource"`` on ``Resource::"<uri>"``; arguments reach the context as
  ``arg_<name>`` (strings, numbers, booleans) or ``arg_<name>_present`` (anything else); the
  resource entity has ``name``/``operation``/``feature`` attributes and the parent
  ``MCP::"<server>"``;
* ``tools/list``, ``prompts/list``, ``resources/list`` answers are filtered: an item stays only if
  the principal may call/get/read it; ``initialize``, ``ping`` and notifications pass; any other
  method is denied (upstream's default deny).

Differences: whole-number claims are Cedar ``Long`` (upstream decodes JSON numbers as float64 and
makes them ``decimal``); other numbers are ``decimal`` when Cedar can hold them (4 decimals).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cedarpy
import msgspec
import yaml

from thv.api import runconfig as rc
from thv.middleware.jsonrpc import JSONObject, McpRequest
from thv.proxy.config import ConfigError
from thv.render.authz import CedarError, parse_cedar

__all__ = ["AuthzError", "CedarAuthorizer", "Check", "load_authorizer"]

log = logging.getLogger("thv.middleware.authz")

GROUP_CLAIMS: Final = ("groups", "roles", "cognito:groups")
GROUP_ENTITY_TYPE: Final = "THVGroup"
_MAX_DEPTH: Final = 10

#: MCP method → (action, resource type, feature, operation); ``None`` = not authorized per item
_CHECKED: Final[Mapping[str, tuple[str, str, str, str]]] = {
    "tools/call": ("call_tool", "Tool", "tool", "call"),
    "prompts/get": ("get_prompt", "Prompt", "prompt", "get"),
    "resources/read": ("read_resource", "Resource", "resource", "read"),
    "resources/subscribe": ("read_resource", "Resource", "resource", "read"),
    "resources/unsubscribe": ("read_resource", "Resource", "resource", "read"),
}
#: list methods whose answers are filtered (method → item key, per-item method, item id key)
LIST_FILTERS: Final[Mapping[str, tuple[str, str, str]]] = {
    "tools/list": ("tools", "tools/call", "name"),
    "prompts/list": ("prompts", "prompts/get", "name"),
    "resources/list": ("resources", "resources/read", "uri"),
}
#: pass without a decision (upstream's empty feature/operation entries)
_PASS: Final = frozenset(
    {
        "initialize",
        "ping",
        "roots/list",
        "logging/setLevel",
        "completion/complete",
        "resources/templates/list",
        "features/list",
        "server/discover",
    }
)


class AuthzError(ConfigError):
    """The authorization configuration cannot be used (the message says where and why)."""


@dataclass(frozen=True, slots=True)
class Check:
    """What the middleware must do with one request."""

    kind: str  # "pass" | "decide" | "filter" | "deny"
    allowed: bool = True


def _cedar_value(value: object, depth: int = 0) -> object | None:
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        text = f"{value:.4f}".rstrip("0")
        if float(text) != value or abs(value) >= 922337203685477:
            return None
        return {"__extn": {"fn": "decimal", "arg": text + ("0" if text.endswith(".") else "")}}
    if isinstance(value, list):
        items = [_cedar_value(v, depth + 1) for v in value]
        return [v for v in items if v is not None]
    if isinstance(value, dict):
        return {str(k): c for k, v in value.items() if (c := _cedar_value(v, depth + 1)) is not None}
    return None


def _record(values: Mapping[str, object]) -> dict[str, object]:
    return {k: c for k, v in values.items() if (c := _cedar_value(v)) is not None}


def _arguments(arguments: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in arguments.items():
        if isinstance(value, str | bool | int | float) and _cedar_value(value) is not None:
            out[f"arg_{key}"] = value
        else:
            out[f"arg_{key}_present"] = True
    return out


class CedarAuthorizer:
    """Policies parsed once; one ``cedarpy`` evaluation per decision."""

    def __init__(self, policies: list[str], entities_json: str = "[]", server_name: str = "") -> None:
        try:
            self.policies, self.entities_json = parse_cedar(policies, entities_json)
        except CedarError as exc:
            raise AuthzError(str(exc)) from None
        self.entities = cedarpy.Entities.from_json_str(self.entities_json)
        self.server_name = server_name

    def check(self, request: McpRequest) -> Check:
        if request.is_notification or request.method in _PASS:
            return Check("pass")
        if request.method in LIST_FILTERS:
            return Check("filter")
        if request.method in _CHECKED:
            return Check("decide")
        return Check("deny", allowed=False)

    def authorize(
        self,
        claims: Mapping[str, object] | None,
        method: str,
        resource_id: str,
        arguments: Mapping[str, object] | None = None,
    ) -> bool:
        """The decision for ``method`` on ``resource_id`` (``tools/call``, ``prompts/get``, ``resources/read``)."""
        mapping = _CHECKED.get(method)
        sub = claims.get("sub") if claims is not None else None
        if mapping is None or claims is None or not isinstance(sub, str) or not sub or not resource_id:
            return False
        action, resource_type, feature, operation = mapping
        claim_attrs = _record({f"claim_{k}": v for k, v in claims.items()})
        args = _arguments(arguments or {})
        groups: list[str] = []
        for name in GROUP_CLAIMS:
            value = claims.get(name)
            if isinstance(value, list):
                groups.extend(g for g in value if isinstance(g, str) and g not in groups)
        resource_attrs: dict[str, object] = {"name": resource_id, "operation": operation, "feature": feature}
        if resource_type == "Resource":
            resource_attrs["uri"] = resource_id
        if resource_type == "Tool":
            resource_attrs = {**args, **resource_attrs}
        principal = {"type": "Client", "id": sub}
        request_entities: list[dict[str, object]] = [
            {
                "uid": principal,
                "attrs": claim_attrs,
                "parents": [{"type": GROUP_ENTITY_TYPE, "id": g} for g in groups],
            },
            {"uid": {"type": "Action", "id": action}, "attrs": {"operation": action}, "parents": []},
            {
                "uid": {"type": resource_type, "id": resource_id},
                "attrs": _record(resource_attrs),
                "parents": [{"type": "MCP", "id": self.server_name}] if self.server_name else [],
            },
        ]
        try:
            entities = self.entities.with_added_json_str(json.dumps(request_entities))
        except ValueError:  # a configured entity has the request's uid: the request's wins (upstream)
            entities = self._merged(request_entities)
        result = cedarpy.is_authorized(
            {
                "principal": principal,
                "action": {"type": "Action", "id": action},
                "resource": {"type": resource_type, "id": resource_id},
                "context": {**claim_attrs, **_record(args)},
            },
            self.policies,
            entities,
        )
        if result.diagnostics.errors:
            log.warning("cedar evaluation errors method=%s errors=%d", method, len(result.diagnostics.errors))
            return False
        return bool(result.allowed)

    def _merged(self, request_entities: list[dict[str, object]]) -> cedarpy.Entities:
        uids = [e["uid"] for e in request_entities]
        configured = json.loads(self.entities_json)
        kept = [e for e in configured if not (isinstance(e, dict) and e.get("uid") in uids)]
        return cedarpy.Entities.from_json_str(json.dumps(kept + request_entities))

    def filter_list(self, method: str, message: JSONObject, claims: Mapping[str, object] | None) -> bool:
        """Filter the items of a list answer in place; ``True`` if ``message`` was one."""
        spec = LIST_FILTERS.get(method)
        result = message.get("result")
        if spec is None or not isinstance(result, dict):
            return False
        key, item_method, id_key = spec
        items = result.get(key)
        if not isinstance(items, list):
            return False
        kept = [
            item
            for item in items
            if isinstance(item, dict)
            and isinstance(item.get(id_key), str)
            and self.authorize(claims, item_method, item[id_key])
        ]
        message["result"] = {**result, key: kept}
        return True


class _CedarOptions(msgspec.Struct, kw_only=True):
    policies: list[str] | None = None
    entities_json: str = "[]"


class _AuthzFile(msgspec.Struct, kw_only=True):
    version: str = ""
    type: str = ""
    cedar: _CedarOptions | None = None


def load_authorizer(
    config: rc.AuthzConfig | None, path: str = "", server_name: str = ""
) -> CedarAuthorizer | None:
    """The authorizer for the RunConfig's ``authz_config`` (embedded) or ``authz_config_path``
    (the mounted ``authz.json``, JSON or YAML); ``None`` when neither is set. Raises
    :class:`AuthzError` naming the source for anything unusable (start-up must fail)."""
    where = "authz_config"
    if config is not None:
        policies = config.cedar.policies if config.cedar is not None else None
        entities = config.cedar.entities_json if config.cedar is not None else "[]"
        kind = config.type
    elif path:
        where = f"authorization config {path}"
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise AuthzError(f"{where}: cannot read it: {exc.strerror}") from None
        try:
            doc = yaml.safe_load(raw)
            parsed = msgspec.convert(doc, type=_AuthzFile)
        except (yaml.YAMLError, msgspec.ValidationError) as exc:
            raise AuthzError(f"{where}: not a valid authorization config: {exc}") from None
        policies = parsed.cedar.policies if parsed.cedar is not None else None
        entities = parsed.cedar.entities_json if parsed.cedar is not None else "[]"
        kind = parsed.type
    else:
        return None
    if kind != "cedarv1":
        raise AuthzError(f"{where}: unsupported authorizer type {kind!r} (only cedarv1)")
    try:
        return CedarAuthorizer(list(policies or []), entities or "[]", server_name)
    except AuthzError as exc:
        raise AuthzError(f"{where}: {exc}") from None
