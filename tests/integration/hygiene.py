"""Secret hygiene: find secret strings (client secrets, tokens) anywhere they must not be.

Where it looks (every place a secret could travel through thv):

* the cluster, per watched namespace: ConfigMaps, Deployments, ReplicaSets, StatefulSets, Pods
  (args, literal ``env[].value``; a ``valueFrom.secretKeyRef`` names a key, never a value),
  Services, ServiceAccounts, Roles, RoleBindings, Events, and MCPServer / MCPToolConfig /
  MCPExternalAuthConfig objects (spec and status) — Secrets themselves are the one exception;
* the logs: every ``logging`` record while the scanner is active, rendered by thv's own
  structlog JSON formatter (:func:`thv.observability.logs.configure_logging`), plus the raw
  message, its arguments and any traceback;
* the traces: every finished span in the in-memory exporter (names, attributes, events such as
  recorded exceptions, links, status descriptions);
* anything else a test adds (:meth:`SecretScanner.add_haystack`: a metrics page, a response).

Each secret is looked for as is and in the encodings it could hide in: JSON and Go escaping,
URL encoding (``quote``/``quote_plus``), hex, and base64/base64url at all three byte alignments
(the part of the encoding that only depends on the secret, so it is found inside a longer
base64 blob too). For a JWT the signature segment is a secret of its own.

Reuse: request the ``secret_scanner`` fixture (registered in ``tests/integration/conftest.py``)::

    def test_x(secret_scanner, namespace):
        secret_scanner.watch_namespace(namespace)
        secret_scanner.add_secret("client secret", value)
        ...  # the scenario
        secret_scanner.assert_clean()  # also run at teardown if the test did not

or call :func:`scan` on your own ``(where, text)`` pairs.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from thv.observability.logs import configure_logging
from thv.render.common import go_escape

Haystack = tuple[str, str]

#: needles shorter than this are not looked for (too likely to match by chance)
MIN_NEEDLE = 8

# --- encodings --------------------------------------------------------------------------------


def _base64_cores(raw: bytes) -> dict[str, str]:
    """For each alignment of ``raw`` inside a longer byte string (0, 1 or 2 bytes before it), the
    run of base64 characters that depends on ``raw`` alone."""
    out: dict[str, str] = {}
    n = len(raw)
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode()
        start, end = -(-8 * k // 6), (8 * (k + n)) // 6
        core = encoded[start:end]
        out[f"base64@{k}"] = core
        out[f"base64url@{k}"] = core.translate(str.maketrans("+/", "-_"))
    return out


def _lower_escapes(quoted: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)


def encodings(secret: str) -> dict[str, str]:
    """Encoding label → the string to look for (deduplicated, at least :data:`MIN_NEEDLE` long)."""
    raw = secret.encode()
    candidates: dict[str, str] = {
        "plain": secret,
        "json": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "go-json": go_escape(json.dumps(secret, ensure_ascii=False)[1:-1]),
        "url": urllib.parse.quote(secret, safe=""),
        "url-path": urllib.parse.quote(secret),
        "url-form": urllib.parse.quote_plus(secret),
        "url-lowercase": _lower_escapes(urllib.parse.quote(secret, safe="")),
        "hex": raw.hex(),
        **_base64_cores(raw),
    }
    out: dict[str, str] = {}
    seen: set[str] = set()
    for label, needle in candidates.items():
        if len(needle) >= MIN_NEEDLE and needle not in seen:
            seen.add(needle)
            out[label] = needle
    return out


def secret_parts(label: str, value: str) -> dict[str, str]:
    """The secret, and for a JWT (``a.b.c``) also its signature segment on its own."""
    parts = {label: value}
    segments = value.split(".")
    if len(segments) == 3 and all(segments) and len(segments[2]) >= 16:
        parts[f"{label} (JWT signature)"] = segments[2]
    return parts


# --- scanning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One occurrence of a secret (``encoding`` of the secret ``secret``) in ``where``."""

    secret: str
    encoding: str
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.encoding}) in {self.where}: …{self.excerpt}…"


def scan(secrets: Mapping[str, str], haystacks: Iterable[Haystack]) -> list[Finding]:
    """Every occurrence of every secret (label → value), in any encoding, in ``(where, text)``
    pairs. The excerpt masks the secret itself."""
    needles: list[tuple[str, str, str]] = []
    for label, value in secrets.items():
        for part_label, part in secret_parts(label, value).items():
            needles.extend((part_label, enc, needle) for enc, needle in encodings(part).items())
    findings: list[Finding] = []
    for where, text in haystacks:
        for label, enc, needle in needles:
            start = text.find(needle)
            while start != -1:
                end = start + len(needle)
                excerpt = f"{text[max(0, start - 60) : start]}<{label}>{text[end : end + 60]}"
                findings.append(Finding(label, enc, where, excerpt.replace("\n", "\\n")))
                start = text.find(needle, end)
    return findings


# --- where to look ------------------------------------------------------------------------------

_GROUP = "/apis/toolhive.stacklok.dev/v1alpha1"
#: (kind, collection path under a namespace)
CLUSTER_KINDS: tuple[tuple[str, str], ...] = (
    ("ConfigMap", "/api/v1/namespaces/{ns}/configmaps"),
    ("Event", "/api/v1/namespaces/{ns}/events"),
    ("Pod", "/api/v1/namespaces/{ns}/pods"),
    ("Service", "/api/v1/namespaces/{ns}/services"),
    ("ServiceAccount", "/api/v1/namespaces/{ns}/serviceaccounts"),
    ("Deployment", "/apis/apps/v1/namespaces/{ns}/deployments"),
    ("ReplicaSet", "/apis/apps/v1/namespaces/{ns}/replicasets"),
    ("StatefulSet", "/apis/apps/v1/namespaces/{ns}/statefulsets"),
    ("Role", "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
    ("RoleBinding", "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
    ("MCPServer", _GROUP + "/namespaces/{ns}/mcpservers"),
    ("MCPToolConfig", _GROUP + "/namespaces/{ns}/mcptoolconfigs"),
    ("MCPExternalAuthConfig", _GROUP + "/namespaces/{ns}/mcpexternalauthconfigs"),
)


def cluster_haystacks(cp: Any, namespaces: Iterable[str]) -> Iterator[Haystack]:
    """Every object of :data:`CLUSTER_KINDS` in ``namespaces``, as JSON (``cp``: a ControlPlane)."""
    for ns in namespaces:
        for kind, path in CLUSTER_KINDS:
            status, body = cp.api_request("GET", path.format(ns=ns))
            if status == 404 and kind.startswith("MCP"):
                continue  # the CRDs are not installed in this cluster
            assert status == 200, (kind, ns, body)
            for obj in body.get("items") or []:
                where = f"{kind} {ns}/{obj['metadata']['name']}"
                yield where, json.dumps(obj, ensure_ascii=False)
                # the same text as a JSON-escaped value would show it (args, annotations …)
                yield f"{where} (ascii)", json.dumps(obj)


def span_haystacks(exporter: Any) -> Iterator[Haystack]:
    """Every finished span of an ``InMemorySpanExporter``: name, attributes, events, links, status."""
    for span in exporter.get_finished_spans():
        doc = {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
            "links": [dict(link.attributes or {}) for link in span.links],
            "status": span.status.description,
            "resource": dict(span.resource.attributes) if span.resource is not None else {},
        }
        yield f"span {span.name!r}", json.dumps(doc, ensure_ascii=False, default=str)


class LogCapture(logging.Handler):
    """Collects every record (while installed) as thv's structlog JSON line, plus its raw parts."""

    _NOISY = ("httpx", "httpcore", "kr8s", "uvicorn.access")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._saved: tuple[list[logging.Handler], int, dict[str, int]] | None = None

    def install(self) -> None:
        """Log at DEBUG through thv's own formatter (as ``thv operator run --log-level debug``)."""
        root = logging.getLogger()
        self._saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in self._NOISY})
        configure_logging("DEBUG", json=True)  # builds the production formatter on root's handler
        self.setFormatter(root.handlers[0].formatter)
        root.handlers[:] = [*self._saved[0], self]

    def remove(self) -> None:
        if self._saved is None:
            return
        handlers, level, noisy = self._saved
        root = logging.getLogger()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lvl in noisy.items():
            logging.getLogger(name).setLevel(lvl)
        self._saved = None

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.name, str(record.msg), repr(record.args)]
        try:
            parts.append(self.format(record))
        except Exception as exc:  # a record that cannot be rendered must not hide its parts
            parts.append(f"<unformattable: {exc!r}>")
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_KEYS}
        if extra:
            parts.append(repr(extra))
        self.lines.append("\n".join(parts))

    def haystacks(self) -> Iterator[Haystack]:
        for i, line in enumerate(self.lines):
            yield f"log record #{i} ({line.split(chr(10), 1)[0]})", line


_STANDARD_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


# --- the reusable scanner -------------------------------------------------------------------


@dataclass
class SecretScanner:
    """Secrets to look for, and the places to look in (see the module docstring)."""

    control_plane: Any = None
    span_exporter: Any = None
    logs: LogCapture = field(default_factory=LogCapture)
    secrets: dict[str, str] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    extra: list[Haystack] = field(default_factory=list)
    scanned: bool = False
    #: called once a namespace is watched and no control plane was given (the fixture's lookup)
    control_plane_factory: Callable[[], Any] | None = None

    def add_secret(self, label: str, value: str) -> str:
        """Look for ``value`` (returned, for convenience) under ``label``."""
        if len(value) < MIN_NEEDLE:
            raise ValueError(f"secret {label!r} is too short to look for reliably")
        self.secrets[label] = value
        return value

    def watch_namespace(self, namespace: str) -> None:
        """Scan this namespace's objects too (needs the control plane)."""
        if self.control_plane is None and self.control_plane_factory is not None:
            self.control_plane = self.control_plane_factory()
        if namespace not in self.namespaces:
            self.namespaces.append(namespace)

    def add_haystack(self, where: str, text: str) -> None:
        self.extra.append((where, text))

    def haystacks(self) -> Iterator[Haystack]:
        if self.namespaces:
            assert self.control_plane is not None, "watch_namespace needs a control plane"
            yield from cluster_haystacks(self.control_plane, self.namespaces)
        yield from self.logs.haystacks()
        if self.span_exporter is not None:
            yield from span_haystacks(self.span_exporter)
        yield from self.extra

    def findings(self) -> list[Finding]:
        self.scanned = True
        return scan(self.secrets, self.haystacks())

    def coverage(self) -> dict[str, int]:
        """How much was looked at, by source (to show a clean scan was not an empty one)."""
        counts: dict[str, int] = {}
        for where, _ in self.haystacks():
            source = where.split(" ", 1)[0]
            counts[source] = counts.get(source, 0) + 1
        return counts

    def assert_clean(self) -> None:
        found = self.findings()
        assert not found, f"{len(found)} secret occurrence(s):\n" + "\n".join(map(str, found[:50]))


@pytest.fixture
def secret_scanner(request: pytest.FixtureRequest, span_exporter: Any) -> Iterator[SecretScanner]:
    """A :class:`SecretScanner` capturing logs and spans from now on; the control plane is used
    only if the test watches a namespace. If the test never scanned, the scan runs at teardown."""
    span_exporter.clear()
    scanner = SecretScanner(
        span_exporter=span_exporter, control_plane_factory=lambda: request.getfixturevalue("control_plane")
    )
    scanner.logs.install()
    try:
        yield scanner
        if not scanner.scanned and scanner.secrets:
            scanner.assert_clean()
    finally:
        scanner.logs.remove()
