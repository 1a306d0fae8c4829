"""thv.hashing: FNV-1a 32-bit over canonical JSON; stable, order-independent, opaque."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from thv.api.crds import (
    MCPExternalAuthConfigSpec,
    MCPToolConfigSpec,
    SecretKeyRef,
    TokenExchangeConfig,
    ToolOverride,
)
from thv.hashing import canonical_json, config_hash, fnv1a_32

CHAINSAW_EXTAUTH = MCPExternalAuthConfigSpec(
    type="tokenExchange",
    token_exchange=TokenExchangeConfig(
        token_url="https://oauth.example.com/token",
        client_id="test-client-id",
        client_secret_ref=SecretKeyRef(name="oauth-test-secret", key="client-secret"),
        audience="mcp-backend",
        scopes=["read", "write"],
        external_token_header_name="X-Upstream-Token",
    ),
)
TOOLCONFIG = MCPToolConfigSpec(
    tools_filter=["fetch"],
    tools_override={"fetch": ToolOverride(name="web_fetch", description="Fetch a web page")},
)


def test_fnv1a_32_reference_vectors() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_pinned_values() -> None:
    """Computed once; a change here changes every stored configHash (and restarts nothing, but churns)."""
    assert config_hash(CHAINSAW_EXTAUTH) == "5d2e6ad8"
    assert config_hash(TOOLCONFIG) == "0390cdcb"
    assert config_hash(MCPToolConfigSpec()) == "5465b825"


def test_format_is_eight_lowercase_hex_digits() -> None:
    for spec in (CHAINSAW_EXTAUTH, TOOLCONFIG, MCPToolConfigSpec()):
        h = config_hash(spec)
        assert len(h) == 8 and h == h.lower() and int(h, 16) >= 0


def test_canonical_form_is_the_wire_form_with_sorted_maps() -> None:
    spec = MCPToolConfigSpec(tools_override={"b": ToolOverride(name="B"), "a": ToolOverride(description="A")})
    assert canonical_json(spec) == b'{"toolsOverride":{"a":{"description":"A"},"b":{"name":"B"}}}'


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def test_key_order_of_the_source_json_does_not_matter() -> None:
    for spec in (CHAINSAW_EXTAUTH, TOOLCONFIG):
        doc = msgspec.to_builtins(spec)
        for seed in range(20):
            raw = json.dumps(_shuffled(doc, random.Random(seed))).encode()
            assert config_hash(msgspec.json.decode(raw, type=type(spec))) == config_hash(spec)


def test_unknown_fields_and_explicit_nulls_do_not_change_the_hash() -> None:
    doc = msgspec.to_builtins(CHAINSAW_EXTAUTH)
    doc["futureField"] = {"x": 1}
    doc["tokenExchange"]["subjectTokenType"] = None
    decoded = msgspec.json.decode(json.dumps(doc).encode(), type=MCPExternalAuthConfigSpec)
    assert config_hash(decoded) == config_hash(CHAINSAW_EXTAUTH)


def test_any_change_changes_the_hash() -> None:
    te = CHAINSAW_EXTAUTH.token_exchange
    assert te is not None
    variants = [
        msgspec.structs.replace(te, audience="other"),
        msgspec.structs.replace(te, scopes=["write", "read"]),
        msgspec.structs.replace(te, client_secret_ref=SecretKeyRef(name="oauth-test-secret", key="other")),
        msgspec.structs.replace(te, external_token_header_name=None),
        msgspec.structs.replace(te, subject_token_type="id_token"),
    ]
    hashes = {config_hash(msgspec.structs.replace(CHAINSAW_EXTAUTH, token_exchange=v)) for v in variants}
    assert len(hashes) == len(variants) and config_hash(CHAINSAW_EXTAUTH) not in hashes


def test_stable_across_processes() -> None:
    """No dependency on PYTHONHASHSEED or interpreter state."""
    code = (
        "from tests.unit.test_hashing import CHAINSAW_EXTAUTH, TOOLCONFIG;"
        "from thv.hashing import config_hash;"
        "print(config_hash(CHAINSAW_EXTAUTH), config_hash(TOOLCONFIG))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        ).stdout.strip()
        for seed in ("0", "1", "12345")
    }
    assert outs == {"5d2e6ad8 0390cdcb"}


_text = st.text(max_size=12)
_tool_override = st.builds(ToolOverride, name=st.none() | _text, description=st.none() | _text)
_toolconfig = st.builds(
    MCPToolConfigSpec,
    tools_filter=st.none() | st.lists(_text, max_size=5),
    tools_override=st.none() | st.dictionaries(_text, _tool_override, max_size=5),
)
_token_exchange = st.builds(
    TokenExchangeConfig,
    token_url=_text,
    audience=_text,
    client_id=st.none() | _text,
    client_secret_ref=st.none() | st.builds(SecretKeyRef, name=_text, key=_text),
    scopes=st.none() | st.lists(_text, max_size=4),
    subject_token_type=st.none() | st.sampled_from(["access_token", "id_token", "jwt"]),
    external_token_header_name=st.none() | _text,
)
_extauth = st.builds(
    MCPExternalAuthConfigSpec, type=st.just("tokenExchange"), token_exchange=st.none() | _token_exchange
)


@given(spec=_toolconfig | _extauth, seed=st.integers(0, 2**32 - 1))
def test_equal_specs_hash_equal(spec: MCPToolConfigSpec | MCPExternalAuthConfigSpec, seed: int) -> None:
    raw = json.dumps(_shuffled(msgspec.to_builtins(spec), random.Random(seed))).encode()
    again = msgspec.json.decode(raw, type=type(spec))
    assert again == spec
    assert config_hash(again) == config_hash(spec)
    assert config_hash(msgspec.structs.replace(spec)) == config_hash(spec)


@given(a=_toolconfig, b=_toolconfig)
def test_different_specs_hash_differently_when_canonical_forms_differ(
    a: MCPToolConfigSpec, b: MCPToolConfigSpec
) -> None:
    if canonical_json(a) == canonical_json(b):
        assert config_hash(a) == config_hash(b)
    # (32-bit collisions are possible in principle; none expected at this sample size)
    elif config_hash(a) == config_hash(b):
        raise AssertionError(f"collision: {a} / {b}")
