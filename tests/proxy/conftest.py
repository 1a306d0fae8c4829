"""Fixtures for the ``thv proxy`` tests (see proxy_fixtures.py; helpers in proxy_testlib.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_fixtures import (
    keycloak,
    keycloak_roundtrip,
    keycloak_upstream,
    proxy_server,
    span_exporter,
    spans,
)

__all__ = ["keycloak", "keycloak_roundtrip", "keycloak_upstream", "proxy_server", "span_exporter", "spans"]
