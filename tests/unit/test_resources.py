"""Resource.path: one safe path segment per name, never a different request."""

from __future__ import annotations

import pytest

from thv.kube.resources import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, SECRETS


def test_paths() -> None:
    assert CONFIGMAPS.path("ns") == "/api/v1/namespaces/ns/configmaps"
    assert DEPLOYMENTS.path("ns", "web", "status") == "/apis/apps/v1/namespaces/ns/deployments/web/status"
    assert NAMESPACES.path(None, "kube-system") == "/api/v1/namespaces/kube-system"


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_names_that_would_address_something_else_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid object name"):
        SECRETS.path("ns", name)


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("../configmaps/x", "..%2Fconfigmaps%2Fx"),
        ("x?watch=1", "x%3Fwatch%3D1"),
        ("é", "%C3%A9"),
    ],
)
def test_names_are_one_encoded_segment(name: str, segment: str) -> None:
    assert SECRETS.path("ns", name) == f"/api/v1/namespaces/ns/secrets/{segment}"
