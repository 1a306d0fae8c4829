"""Config hash of an MCPToolConfig / MCPExternalAuthConfig spec.

``config_hash(spec)`` is FNV-1a 32-bit over a canonical JSON serialisation of the spec,
printed as 8 lowercase hex digits (zero-padded).

Canonical form: ``msgspec.json.Encoder(order="deterministic")`` of the typed Struct, which
writes Struct fields in declaration order, sorts every map's keys, omits defaults (so an
absent field and a field at its default hash the same) and uses the camelCase wire names.
It depends only on the spec's value: not on the key order of the JSON it was decoded from,
the process, the hash seed or the Python version.

Upstream hashes Go's ``dump.ForHash`` rendering of the Go struct (Go type and field names,
unpadded ``%x``). Those values cannot be reproduced outside Go and change between upstream
versions anyway; the hash is an opaque change detector. What matters (and what upstream's
tests and chainsaw check) is that it is non-empty, stable for an equal spec, changes when
the spec changes, and equals the value mirrored into the MCPServer's ``status.*Hash``.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["canonical_json", "config_hash", "fnv1a_32"]

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
_encoder = msgspec.json.Encoder(order="deterministic")


def fnv1a_32(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def canonical_json(spec: Any) -> bytes:
    """The canonical bytes the hash is computed over (Struct field order, sorted map keys)."""
    return _encoder.encode(spec)


def config_hash(spec: msgspec.Struct) -> str:
    """8 lowercase hex digits: FNV-1a 32-bit of :func:`canonical_json`."""
    return f"{fnv1a_32(canonical_json(spec)):08x}"
