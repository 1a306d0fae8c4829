"""Cedar authorization (cedarpy) with upstream's principal/action/resource mapping, from the
configs as the operator renders them, and end to end with the official MCP SDK client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mw_testlib import Transport, first_text, running, session

from thv.api import runconfig as rc
from thv.middleware.authz import AuthzError, CedarAuthorizer, load_authorizer
from thv.middleware.chain import McpChain
from thv.middleware.toolfilter import ToolFilter
from thv.render.authz import authz_inline_json

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"add") when { context has arg_a && context.arg_a < 100 };',
    'permit(principal in THVGroup::"eng", action == Action::"call_tool", resource == Tool::"secret");',
    'permit(principal == Client::"alice", action == Action::"get_prompt", resource == Prompt::"greet");',
    'permit(principal, action == Action::"read_resource", resource) when { resource has uri && resource.uri == "res://public" };',
    'permit(principal, action, resource) when { principal has claim_role && principal.claim_role == "admin" && resource in MCP::"demo" };',
    'forbid(principal, action, resource == Tool::"echo") when { context has claim_email && context.claim_email like "*@blocked.example" };',
]
ALICE = {"sub": "alice", "groups": ["eng"], "iss": "x"}
BOB = {"sub": "bob", "email": "bob@example.com"}


def authorizer(entities: str = "[]") -> CedarAuthorizer:
    return CedarAuthorizer(POLICIES, entities, server_name="demo")


def test_mapping() -> None:
    a = authorizer()
    assert a.authorize(ALICE, "tools/call", "echo")
    assert a.authorize(BOB, "tools/call", "echo")
    assert not a.authorize(
        {"sub": "eve", "email": "eve@blocked.example"}, "tools/call", "echo"
    )  # forbid wins
    assert a.authorize(ALICE, "tools/call", "secret") and not a.authorize(BOB, "tools/call", "secret")
    assert a.authorize(BOB, "tools/call", "add", {"a": 1, "b": 2})
    assert not a.authorize(BOB, "tools/call", "add", {"a": 1000, "b": 2})
    assert not a.authorize(BOB, "tools/call", "add", {"a": "1", "b": 2})  # a string: no Long comparison
    assert a.authorize(ALICE, "prompts/get", "greet") and not a.authorize(BOB, "prompts/get", "greet")
    assert a.authorize(BOB, "resources/read", "res://public") and not a.authorize(
        BOB, "resources/read", "res://private"
    )
    assert a.authorize({"sub": "root", "role": "admin"}, "resources/read", "res://private")  # MCP parent
    # no validated identity / no sub / unknown method: denied
    assert not a.authorize(None, "tools/call", "echo")
    assert not a.authorize({"email": "x@y"}, "tools/call", "echo")
    assert not a.authorize(ALICE, "sampling/createMessage", "x")


def test_an_evaluation_error_denies_as_upstream() -> None:
    """upstream returns "not authorized" whenever Cedar reports an evaluation error, even if
    another policy permits (here: a claim the token does not carry)."""
    a = CedarAuthorizer(
        [
            "permit(principal, action, resource);",
            'forbid(principal, action, resource) when { context.claim_email like "*@blocked.example" };',
        ]
    )
    assert not a.authorize({"sub": "alice"}, "tools/call", "echo")
    assert a.authorize({"sub": "alice", "email": "a@ok.example"}, "tools/call", "echo")


def test_claims_of_every_shape_reach_the_context() -> None:
    policy = (
        "permit(principal, action, resource) when { context.claim_n == 3 && context.claim_ok "
        '&& context.claim_aud.contains("mcp") && context.claim_nested.k == "v" '
        '&& context.claim_ratio.greaterThan(decimal("0.5")) && principal.claim_n == 3 };'
    )
    a = CedarAuthorizer([policy])
    claims = {
        "sub": "s",
        "n": 3,
        "ok": True,
        "aud": ["mcp", "x"],
        "nested": {"k": "v"},
        "ratio": 0.75,
        "none": None,
    }
    assert a.authorize(claims, "tools/call", "t")
    assert not a.authorize({**claims, "ratio": 0.25}, "tools/call", "t")


def test_entities_from_the_config_and_request_entities_winning() -> None:
    entities = json.dumps(
        [
            {"uid": {"type": "Tool", "id": "echo"}, "attrs": {"owner": "team-a"}, "parents": []},
            {"uid": {"type": "Team", "id": "a"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Client", "id": "carol"}, "attrs": {}, "parents": [{"type": "Team", "id": "a"}]},
        ]
    )
    a = CedarAuthorizer(['permit(principal in Team::"a", action, resource);'], entities)
    # carol's request entity (claims as attributes) replaces the configured one, as upstream: the
    # configured parents do not survive — upstream behaves the same (request entities win)
    assert not a.authorize({"sub": "carol"}, "tools/call", "echo")
    b = CedarAuthorizer(["permit(principal, action, resource) when { resource has owner };"], entities)
    assert not b.authorize({"sub": "x"}, "tools/call", "echo")  # request's Tool entity wins too
    c = CedarAuthorizer(['permit(principal, action, resource) when { Team::"a" in Team::"a" };'], entities)
    assert c.authorize({"sub": "x"}, "tools/call", "anything")


def test_rendered_configmap_and_runconfig(tmp_path: Path) -> None:
    """The mounted authz.json as the operator renders it (inline: keys sorted, version 1.0), YAML
    from a user ConfigMap, and the RunConfig's embedded authz_config (version v1)."""
    path = tmp_path / "authz.json"
    path.write_text(authz_inline_json(POLICIES, ""))
    a = load_authorizer(None, str(path), "demo")
    assert a is not None and a.authorize(ALICE, "tools/call", "echo")
    yaml_path = tmp_path / "authz.yaml"
    yaml_path.write_text(
        "version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - permit(principal, action, resource);\n"
    )
    assert load_authorizer(None, str(yaml_path)) is not None
    embedded = rc.AuthzConfig(cedar=rc.CedarConfig(policies=POLICIES, entities_json="[]"))
    b = load_authorizer(embedded, "", "demo")
    assert b is not None and not b.authorize(BOB, "tools/call", "secret")
    assert load_authorizer(None, "") is None


@pytest.mark.parametrize(
    ("policies", "entities", "message"),
    [
        (["permit(principal, action, resource) when { x };"], "[]", "Cedar policy 0 does not parse"),
        ([POLICIES[0], "permit(principal, action"], "[]", "Cedar policy 1 does not parse"),
        ([], "[]", "at least one Cedar policy is required"),
        ([POLICIES[0]], "{", "Cedar entities_json is invalid"),
    ],
)
def test_bad_config_fails_with_a_clear_message(policies: list[str], entities: str, message: str) -> None:
    with pytest.raises(AuthzError, match=message) as err:
        load_authorizer(rc.AuthzConfig(cedar=rc.CedarConfig(policies=policies, entities_json=entities)))
    assert str(err.value).startswith("authz_config: ")


def test_bad_file(tmp_path: Path) -> None:
    with pytest.raises(AuthzError, match=r"authorization config .*/nope.json: cannot read it"):
        load_authorizer(None, str(tmp_path / "nope.json"))
    bad = tmp_path / "authz.json"
    bad.write_text(json.dumps({"version": "1.0", "type": "opa", "cedar": {"policies": ["x"]}}))
    with pytest.raises(AuthzError, match="unsupported authorizer type 'opa'"):
        load_authorizer(None, str(bad))


# --- end to end -----------------------------------------------------------------------------


def _chain() -> McpChain:
    return McpChain(authorizer=authorizer())


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_sdk_client_sees_its_own_view(transport: Transport) -> None:
    with running(transport, _chain()) as url:
        async with session(url, transport, "alice-token") as s:
            # as upstream, a list is filtered without arguments: "add" (argument-dependent) is hidden
            assert {t.name for t in (await s.list_tools()).tools} == {"echo", "secret"}
            assert {p.name for p in (await s.list_prompts()).prompts} == {"greet"}
            assert {str(r.uri) for r in (await s.list_resources()).resources} == {"res://public"}
            assert first_text(await s.call_tool("secret", {})) == "the secret"
            greeting = await s.get_prompt("greet", {"name": "A"})
            assert "Hello A" in str(greeting.messages[0].content)
        async with session(url, transport, "bob-token") as s:
            assert {t.name for t in (await s.list_tools()).tools} == {"echo"}
            assert first_text(await s.call_tool("add", {"a": 1, "b": 2})) == "3"
            for call in (
                lambda: s.call_tool("secret", {}),
                lambda: s.call_tool("add", {"a": 500, "b": 1}),
                lambda: s.get_prompt("greet", {"name": "B"}),
                lambda: s.read_resource("res://private"),
            ):
                with pytest.raises(MCPError) as err:
                    await call()
                assert (err.value.error.code, err.value.error.message) == (403, "Unauthorized")
            public = await s.read_resource("res://public")
            assert first_text(public) == "public data"


@pytest.mark.anyio
async def test_authz_sees_real_names_behind_overrides() -> None:
    """Upstream's order: the tool-call filter renames before the parser, so policies name the real
    tool; list answers are filtered by policy (real names), then renamed."""
    chain = McpChain(
        tool_filter=ToolFilter([], {"secret": rc.ToolOverride(name="classified")}), authorizer=authorizer()
    )
    with running("streamable-http", chain) as url:
        async with session(url, "streamable-http", "alice-token") as s:
            assert {t.name for t in (await s.list_tools()).tools} == {"echo", "classified"}
            assert first_text(await s.call_tool("classified", {})) == "the secret"
        async with session(url, "streamable-http", "bob-token") as s:
            assert {t.name for t in (await s.list_tools()).tools} == {"echo"}
            with pytest.raises(MCPError):
                await s.call_tool("classified", {})
