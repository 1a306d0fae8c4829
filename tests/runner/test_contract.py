"""One vocabulary: the CRD schema, the renderers and the proxy agree with ``thv.api.contract``."""

from __future__ import annotations

import re

import pytest

from thv.api import contract
from thv.api.crds import SUBJECT_TOKEN_TYPE_PATTERN
from thv.crdgen import crd_objects
from thv.proxy.config import ConfigError, _token_exchange
from thv.render.errors import RenderError
from thv.render.runconfig import normalize_subject_token_type as render_normalize


def _header_schema() -> dict[str, object]:
    crd = next(c for c in crd_objects() if c["spec"]["names"]["kind"] == "MCPExternalAuthConfig")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return dict(spec["properties"]["tokenExchange"]["properties"]["externalTokenHeaderName"])


def test_crd_header_rule_is_the_contracts() -> None:
    schema = _header_schema()
    assert schema["pattern"] == contract.HEADER_NAME_PATTERN
    assert schema["maxLength"] == contract.HEADER_NAME_MAX


@pytest.mark.parametrize(
    "name",
    ["X-Upstream-Token", "x_y", "A!#$%&'*+.^_`|~-9", "Bad Header", "a:b", "", "é", "X" * 256, "X" * 257],
)
def test_one_header_name_rule_everywhere(name: str) -> None:
    ok = contract.is_header_name(name)
    assert ok == (re.fullmatch(contract.HEADER_NAME_PATTERN, name) is not None and len(name) <= 256)
    try:  # the proxy's runconfig/flag parser
        _token_exchange(
            token_url="https://t",
            client_id=None,
            client_secret=None,
            audience=None,
            scopes=(),
            subject_token_type=None,
            header_strategy="custom",
            external_token_header_name=name,
            env={},
            where="test",
        )
        proxy_ok = True
    except ConfigError:
        proxy_ok = False
    assert proxy_ok == ok


@pytest.mark.parametrize(
    "value", [None, "", "access_token", "id_token", "jwt", contract.TOKEN_TYPE_JWT, "saml2", "urn:x"]
)
def test_one_subject_token_type_normalisation(value: str | None) -> None:
    crd_accepts = re.fullmatch(SUBJECT_TOKEN_TYPE_PATTERN.strip("^$"), value or "") is not None
    try:
        normalized = contract.normalize_subject_token_type(value)
    except contract.ContractError:
        assert not crd_accepts
        with pytest.raises(RenderError):
            render_normalize(value)
        return
    assert crd_accepts
    assert render_normalize(value) == normalized  # what the RunConfig carries ("" when absent)
    assert contract.effective_subject_token_type(value) == (normalized or contract.TOKEN_TYPE_ACCESS_TOKEN)
