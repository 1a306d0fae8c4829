"""A corpus of bad (and awkward-but-valid) inputs for the operator, with the expected outcome.

Every :class:`Case` is a list of manifests applied in order (:class:`Patch` steps patch an
existing object) and one expectation:

* :class:`Rejected` — the API server refuses the **last** step (CRD schema, CEL rule, name
  validation, strict field validation or the request-size limit) with a message containing
  ``contains``; nothing is stored;
* :class:`Surfaced` — the API server accepts everything, and the operator reports the problem on
  the MCPServer ``server``: condition ``Ready=False`` with ``reason`` and a message containing
  ``contains``, ``status.phase: Failed``, and a Warning Event with that reason; it writes nothing
  for that server;
* :class:`Rendered` — awkward but valid input (unicode, control characters the proxy can carry,
  huge lists, non-https token URLs, pruned unknown fields): the MCPServer runs and
  ``runconfig.json`` carries the value verbatim at ``path``.

Names are unique per case, so every case can be applied into one namespace at once (the
``@other`` namespace placeholder is replaced by a second namespace that the operator does not
watch). The valid control objects (:data:`CONTROL_SETUP`, :data:`CONTROLS_BEFORE`,
:data:`CONTROLS_AMONG`, :data:`CONTROLS_AFTER`) must all reach their desired state regardless.

Used by ``test_bad_input.py`` (all cases against one operator) and ``test_secret_hygiene.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from thvtest import manifests

API_VERSION = "toolhive.stacklok.dev/v1alpha1"
#: placeholder for a second namespace (not watched by the operator under test)
OTHER_NS = "@other"

PLURALS = {
    "MCPServer": "mcpservers",
    "MCPToolConfig": "mcptoolconfigs",
    "MCPExternalAuthConfig": "mcpexternalauthconfigs",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
}

# --- manifest builders ----------------------------------------------------------------------

CLIENT_SECRET_NAME = "bi-client"
CLIENT_SECRET_KEY = "client-secret"
#: the control client secret (the hygiene test scans for it; here it only has to exist)
CLIENT_SECRET_VALUE = "bi-control-client-secret-7c1e4f"


TOKEN_URL = "https://idp.example.com/realms/mcp/protocol/openid-connect/token"


def secret(name: str, namespace: str | None = None, **string_data: str) -> dict[str, Any]:
    return manifests.secret(name, string_data, namespace=namespace)


def configmap(name: str, **data: str) -> dict[str, Any]:
    return manifests.configmap(name, data)


def ext(
    name: str,
    *,
    secret_ref: dict[str, str] | None = None,
    namespace: str | None = None,
    spec: dict[str, Any] | None = None,
    **te: Any,
) -> dict[str, Any]:
    """An MCPExternalAuthConfig (the control client secret, ``mcp-proxy``); ``te`` overrides
    (``None`` removes) tokenExchange fields, ``spec`` replaces the whole spec."""
    fields = {
        "tokenUrl": TOKEN_URL,
        "clientId": "mcp-proxy",
        "clientSecretRef": secret_ref or {"name": CLIENT_SECRET_NAME, "key": CLIENT_SECRET_KEY},
        **te,
    }
    doc = manifests.extauth(name, namespace=namespace, secret=None, **fields)
    if spec is not None:
        doc["spec"] = spec
    return doc


def server(name: str, *, auth: str | None = None, toolref: str | None = None, **spec: Any) -> dict[str, Any]:
    """An MCPServer (stdio, yardstick, no port) referencing MCPExternalAuthConfig ``auth`` and
    MCPToolConfig ``toolref``; ``spec`` overrides (``None`` removes) fields."""
    return manifests.mcpserver(name, external_auth=auth, tool_config=toolref, **{"port": None, **spec})


def toolconfig(name: str, **spec: Any) -> dict[str, Any]:
    return manifests.toolconfig(name, **spec)


# --- steps and expectations -----------------------------------------------------------------


FLAGS, CONFIGMAP = "flags", "configmap"
BOTH_MODES = frozenset({FLAGS, CONFIGMAP})


@dataclass(frozen=True)
class Patch:
    """A JSON merge patch of an existing object (``kind``/``name`` in the test namespace)."""

    kind: str
    name: str
    body: dict[str, Any]


Step = dict[str, Any] | Patch


@dataclass(frozen=True)
class Rejected:
    """The last step is refused with HTTP ``status`` and a message containing ``contains``."""

    contains: str
    status: int = 422


@dataclass(frozen=True)
class Surfaced:
    """Accepted; MCPServer ``server`` gets Ready=False/``reason`` (message ∋ ``contains``),
    phase Failed and a Warning Event ``reason``."""

    server: str
    reason: str
    contains: str


@dataclass(frozen=True)
class Rendered:
    """Accepted and reconciled: ``server`` runs and ``runconfig.json[path…] == value``."""

    server: str
    path: tuple[str | int, ...]
    value: Any


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    steps: tuple[Step, ...]
    expect: Rejected | Surfaced | Rendered
    #: query string for the last step (``?fieldValidation=Strict`` as kubectl sends it)
    query: str = ""
    note: str = ""
    #: the operator modes the expectation holds in (``flags``: CLI flags, ``configmap``: RunConfig)
    modes: frozenset[str] = BOTH_MODES


# --- control objects ------------------------------------------------------------------------

CONTROL_AUDIENCE = "ctl-audience"
CONTROL_TOOLS = ["fetch"]
CONTROL_SETUP: tuple[dict[str, Any], ...] = (
    secret(CLIENT_SECRET_NAME, **{CLIENT_SECRET_KEY: CLIENT_SECRET_VALUE}),
    ext("ctl-auth", audience=CONTROL_AUDIENCE, scopes=["openid"]),
    toolconfig("ctl-tools", toolsFilter=CONTROL_TOOLS),
)
CONTROLS_BEFORE = (server("ctl-before", auth="ctl-auth", toolref="ctl-tools"),)
CONTROLS_AMONG = (
    server("ctl-among-1", auth="ctl-auth"),
    server("ctl-among-2", toolref="ctl-tools", transport="streamable-http", mcpPort=8081),
    server("ctl-among-3", auth="ctl-auth", toolref="ctl-tools", proxyMode="streamable-http"),
)
CONTROLS_AFTER = (server("ctl-after", auth="ctl-auth", toolref="ctl-tools"),)
CONTROL_SERVERS = tuple(s["metadata"]["name"] for s in (*CONTROLS_BEFORE, *CONTROLS_AMONG, *CONTROLS_AFTER))

# --- the corpus -----------------------------------------------------------------------------

MiB = 1 << 20
CONFLICTS = "conflicting settings"
POLICY = "permit(principal, action, resource);"
SCHEMA = "schema"
SCOPE_MESSAGE = "each scope must be one RFC 6749 scope-token"
CROSS_FIELD = "cross-field"
REFERENCES = "references"
SIZE = "size"
NAMES = "names"
VALUES = "unicode/control characters"
URLS = "token URL"
RENDERED_OBJECTS = "rendered objects refused by the API server"
UPDATES = "bad updates of good objects"


def _r(id: str, category: str, step: Step, contains: str, **kw: Any) -> Case:
    return Case(id, category, (step,), Rejected(contains, kw.pop("status", 422)), **kw)


def _s(id: str, category: str, steps: tuple[Step, ...], reason: str, contains: str, **kw: Any) -> Case:
    return Case(id, category, steps, Surfaced(id, reason, contains), **kw)


def _srv_only(id: str, category: str, reason: str, contains: str, *, name: str = "", **spec: Any) -> Case:
    name = name or id
    return Case(id, category, (server(name, **spec),), Surfaced(name, reason, contains))


def _ext_and_srv(id: str, category: str, reason: str, contains: str, **te: Any) -> Case:
    return _s(id, category, (ext(id, **te), server(id, auth=id)), reason, contains)


def _rendered(
    id: str, category: str, steps: tuple[Step, ...], path: tuple[str | int, ...], value: Any
) -> Case:
    return Case(id, category, steps, Rendered(id, path, value))


TE_PATH = ("token_exchange_config",)

CASES: tuple[Case, ...] = (
    # ---- schema violations: rejected at admission ------------------------------------------
    _r(
        "audience-int",
        SCHEMA,
        ext("x1", audience=42),
        "spec.tokenExchange.audience in body must be of type string",
    ),
    _r(
        "scopes-string",
        SCHEMA,
        ext("x2", scopes="read write"),
        "spec.tokenExchange.scopes in body must be of type array",
    ),
    _r(
        "extauth-no-type",
        SCHEMA,
        ext("x3", spec={"tokenExchange": {"tokenUrl": "https://a/t", "audience": "a"}}),
        "spec.type: Required value",
    ),
    _r(
        "extauth-bad-type",
        SCHEMA,
        ext("x4", spec={"type": "oauth2", "tokenExchange": {"tokenUrl": "https://a/t", "audience": "a"}}),
        'spec.type: Unsupported value: "oauth2"',
    ),
    _r(
        "tokenexchange-string",
        SCHEMA,
        ext("x5", spec={"type": "tokenExchange", "tokenExchange": "https://a/t"}),
        "spec.tokenExchange in body must be of type object",
    ),
    _r(
        "secretref-no-key",
        SCHEMA,
        ext("x6", secret_ref={"name": CLIENT_SECRET_NAME}),
        "spec.tokenExchange.clientSecretRef.key: Required value",
    ),
    _r(
        "secretref-no-name",
        SCHEMA,
        ext("x7", secret_ref={"key": CLIENT_SECRET_KEY}),
        "spec.tokenExchange.clientSecretRef.name: Required value",
    ),
    _r(
        "subject-token-type-saml",
        SCHEMA,
        ext("x8", subjectTokenType="saml2"),
        "spec.tokenExchange.subjectTokenType in body should match",
    ),
    _r("server-no-image", SCHEMA, server("x9", image=None), "spec.image: Required value"),
    _r("server-image-int", SCHEMA, server("x10", image=7), "spec.image in body must be of type string"),
    _r(
        "transport-websocket",
        SCHEMA,
        server("x11", transport="websocket"),
        'spec.transport: Unsupported value: "websocket"',
    ),
    _r(
        "proxymode-stdio",
        SCHEMA,
        server("x12", proxyMode="stdio"),
        'spec.proxyMode: Unsupported value: "stdio"',
    ),
    _r("port-zero", SCHEMA, server("x13", port=0), "spec.port in body should be greater than or equal to 1"),
    _r(
        "proxyport-70000",
        SCHEMA,
        server("x14", proxyPort=70000),
        "spec.proxyPort in body should be less than or equal to 65535",
    ),
    _r(
        "mcpport-negative",
        SCHEMA,
        server("x15", mcpPort=-1),
        "spec.mcpPort in body should be greater than or equal to 1",
    ),
    _r("port-fraction", SCHEMA, server("x16", port=8080.5), "spec.port in body must be of type int32"),
    _r("port-string", SCHEMA, server("x17", port="8080"), "spec.port in body must be of type integer"),
    _r("env-no-value", SCHEMA, server("x18", env=[{"name": "A"}]), "spec.env[0].value: Required value"),
    _r(
        "ref-without-name",
        SCHEMA,
        server("x19", externalAuthConfigRef={}),
        "spec.externalAuthConfigRef.name: Required value",
    ),
    _r(
        "profile-type-file",
        SCHEMA,
        server("x20", permissionProfile={"type": "file", "name": "x"}),
        'spec.permissionProfile.type: Unsupported value: "file"',
    ),
    _r(
        "toolsfilter-int",
        SCHEMA,
        toolconfig("x21", toolsFilter=[1]),
        "spec.toolsFilter[0] in body must be of type string",
    ),
    # ---- cross-field rules (CEL and nested required fields) --------------------------------
    _r(
        "tokenexchange-missing",
        CROSS_FIELD,
        ext("x22", spec={"type": "tokenExchange"}),
        "tokenExchange is required when type is tokenExchange",
    ),
    _r(
        "tokenexchange-empty",
        CROSS_FIELD,
        ext("x23", spec={"type": "tokenExchange", "tokenExchange": {}}),
        "spec.tokenExchange.tokenUrl: Required value",
    ),
    _r(
        "tokenexchange-no-audience",
        CROSS_FIELD,
        ext("x24", audience=None),
        "spec.tokenExchange.audience: Required value",
    ),
    _r(
        "audience-empty",
        CROSS_FIELD,
        ext("x25", audience=""),
        "spec.tokenExchange.audience in body should be at least 1 chars long",
    ),
    _r(
        "oidc-configmap-without-ref",
        CROSS_FIELD,
        server("x26", oidcConfig={"type": "configMap"}),
        "configMap is required when type is configMap",
    ),
    _r(
        "oidc-inline-without-inline",
        CROSS_FIELD,
        server("x27", oidcConfig={"type": "inline", "configMap": {"name": "c"}}),
        "inline is required when type is inline",
    ),
    _r(
        "authz-inline-without-inline",
        CROSS_FIELD,
        server("x28", authzConfig={"type": "inline", "configMap": {"name": "c"}}),
        "inline is required when type is inline",
    ),
    _r(
        "authz-no-policies",
        CROSS_FIELD,
        server("x29", authzConfig={"type": "inline", "inline": {"policies": []}}),
        "spec.authzConfig.inline.policies in body should have at least 1 items",
    ),
    _r(
        "tool-override-empty",
        CROSS_FIELD,
        toolconfig("x30", toolsOverride={"fetch": {}}),
        "at least one of name or description must be set",
    ),
    _r(
        "header-with-space",
        CROSS_FIELD,
        ext("x31", externalTokenHeaderName="X Upstream"),
        "spec.tokenExchange.externalTokenHeaderName in body should match",
    ),
    _r(
        "header-crlf-injection",
        VALUES,
        ext("x32", externalTokenHeaderName="X-Up\r\nInjected: 1"),
        "spec.tokenExchange.externalTokenHeaderName in body should match",
    ),
    _r(
        "header-empty",
        CROSS_FIELD,
        ext("x33", externalTokenHeaderName=""),
        "spec.tokenExchange.externalTokenHeaderName in body should match",
    ),
    # the upstream example manifests' snake_case keys (reference §13): pruned, so required fields miss
    _r(
        "upstream-snake-case-example",
        CROSS_FIELD,
        ext(
            "x34",
            spec={
                "type": "tokenExchange",
                "tokenExchange": {
                    "token_url": "https://a/t",
                    "client_id": "c",
                    "audience": "a",
                    "scope": "openid",
                },
            },
        ),
        "spec.tokenExchange.tokenUrl: Required value",
    ),
    # ---- token URL ---------------------------------------------------------------------------
    _r(
        "tokenurl-not-a-url",
        URLS,
        ext("x35", tokenUrl="not a url"),
        "spec.tokenExchange.tokenUrl in body should match",
    ),
    _r(
        "tokenurl-ftp",
        URLS,
        ext("x36", tokenUrl="ftp://idp.example.com/token"),
        "spec.tokenExchange.tokenUrl in body should match",
    ),
    _r(
        "tokenurl-newline",
        URLS,
        ext("x37", tokenUrl="https://idp.example.com/\ntoken"),
        "spec.tokenExchange.tokenUrl in body should match",
    ),
    _r(
        "tokenurl-too-long",
        SIZE,
        ext("x38", tokenUrl="https://idp.example.com/" + "t" * 3000),
        "spec.tokenExchange.tokenUrl: Too long: may not be more than 2048 bytes",
    ),
    # ---- sizes -------------------------------------------------------------------------------
    _r(
        "audience-1mib",
        SIZE,
        ext("x39", audience="a" * MiB),
        "spec.tokenExchange.audience: Too long: may not be more than 1024 bytes",
    ),
    _r(
        "header-name-300",
        SIZE,
        ext("x40", externalTokenHeaderName="X" * 300),
        "spec.tokenExchange.externalTokenHeaderName: Too long",
    ),
    # just over the apiserver's 3 MiB body limit: much more and the apiserver may close the
    # connection while the client is still sending, instead of answering 413
    _r(
        "request-over-3mib",
        SIZE,
        server("x41", args=["x" * (3 * MiB)]),
        "Request entity too large: limit is 3145728",
        status=413,
    ),
    # ---- names (must be RFC 1123 subdomains) ---------------------------------------------------
    _r("name-uppercase", NAMES, server("BadName"), "a lowercase RFC 1123 subdomain must consist of"),
    _r("name-unicode", NAMES, server("sérveur"), "a lowercase RFC 1123 subdomain must consist of"),
    _r("name-emoji", NAMES, ext("mcp-\U0001f525"), "a lowercase RFC 1123 subdomain must consist of"),
    _r("name-rtl-mark", NAMES, toolconfig("tools\u200f"), "a lowercase RFC 1123 subdomain must consist of"),
    _r("name-nul", NAMES, server("a\x00b"), "a lowercase RFC 1123 subdomain must consist of"),
    _r("name-underscore", NAMES, server("my_server"), "a lowercase RFC 1123 subdomain must consist of"),
    _r("name-254", NAMES, server("a" * 254), "must be no more than 253 characters"),
    # ---- unknown fields under strict field validation (kubectl apply's default) ---------------
    _r(
        "ref-namespace-strict",
        REFERENCES,
        server("x42", externalAuthConfigRef={"name": "ctl-auth", "namespace": "kube-system"}),
        'unknown field "spec.externalAuthConfigRef.namespace"',
        query="?fieldValidation=Strict",
        status=400,
        note="cross-namespace refs are not expressible: the ref has only a name",
    ),
    _r(
        "headerstrategy-strict",
        SCHEMA,
        ext("x43", headerStrategy="custom"),
        'unknown field "spec.tokenExchange.headerStrategy"',
        query="?fieldValidation=Strict",
        status=400,
        note="the seed removed HeaderStrategy (inferred from externalTokenHeaderName)",
    ),
    # ---- bad updates of good objects (refused; the good object is unchanged) ----------------
    _r(
        "patch-control-audience-1mib",
        UPDATES,
        Patch("MCPExternalAuthConfig", "ctl-auth", {"spec": {"tokenExchange": {"audience": "a" * MiB}}}),
        "Too long: may not be more than 1024 bytes",
    ),
    _r(
        "patch-control-remove-tokenurl",
        UPDATES,
        Patch("MCPExternalAuthConfig", "ctl-auth", {"spec": {"tokenExchange": {"tokenUrl": None}}}),
        "spec.tokenExchange.tokenUrl: Required value",
    ),
    _r(
        "patch-control-type",
        UPDATES,
        Patch("MCPExternalAuthConfig", "ctl-auth", {"spec": {"type": "none"}}),
        'spec.type: Unsupported value: "none"',
    ),
    _r(
        "patch-control-server-port",
        UPDATES,
        Patch("MCPServer", "ctl-before", {"spec": {"port": 0}}),
        "spec.port in body should be greater than or equal to 1",
    ),
    _r(
        "patch-control-tools-override",
        UPDATES,
        Patch("MCPToolConfig", "ctl-tools", {"spec": {"toolsOverride": {"fetch": {}}}}),
        "at least one of name or description must be set",
    ),
    # ---- missing and unresolvable references: surfaced ---------------------------------------
    _s(
        "missing-extauth",
        REFERENCES,
        (server("missing-extauth", auth="no-such-extauth"),),
        "ExternalAuthConfigNotFound",
        "MCPExternalAuthConfig no-such-extauth not found in namespace",
    ),
    _s(
        "missing-toolconfig",
        REFERENCES,
        (server("missing-toolconfig", toolref="no-such-tools"),),
        "ToolConfigNotFound",
        "MCPToolConfig no-such-tools not found in namespace",
    ),
    _ext_and_srv(
        "missing-secret",
        REFERENCES,
        "ClientSecretNotFound",
        "missing-secret-x not found",
        secret_ref={"name": "missing-secret-x", "key": "client-secret"},
    ),
    _s(
        "missing-secret-key",
        REFERENCES,
        (
            secret("missing-secret-key", **{"other-key": "not-the-client-secret"}),
            ext("missing-secret-key", secret_ref={"name": "missing-secret-key", "key": "client-secret"}),
            server("missing-secret-key", auth="missing-secret-key"),
        ),
        "ClientSecretKeyMissing",
        'is missing key "client-secret"',
    ),
    _s(
        "ref-cross-namespace-slash",
        REFERENCES,
        (server("ref-cross-namespace-slash", auth="kube-system/ctl-auth"),),
        "ExternalAuthConfigNotFound",
        "references are same-namespace only",
    ),
    _s(
        "toolref-cross-namespace-slash",
        REFERENCES,
        (server("toolref-cross-namespace-slash", toolref="other/ctl-tools"),),
        "ToolConfigNotFound",
        "references are same-namespace only",
    ),
    _s(
        "ref-namespace-pruned",
        REFERENCES,
        (
            ext("xns-auth", namespace=OTHER_NS),
            server("ref-namespace-pruned", externalAuthConfigRef={"name": "xns-auth", "namespace": OTHER_NS}),
        ),
        "ExternalAuthConfigNotFound",
        "MCPExternalAuthConfig xns-auth not found in namespace",
        note="without strict validation the namespace field is pruned: the name resolves in the server's own namespace",
    ),
    _s(
        "ref-empty-name",
        REFERENCES,
        (server("ref-empty-name", externalAuthConfigRef={"name": ""}),),
        "ExternalAuthConfigNotFound",
        "not a valid object name",
    ),
    _ext_and_srv(
        "secretref-empty",
        REFERENCES,
        "InvalidExternalAuthConfig",
        "clientSecretRef.name '' is not a valid Secret name",
        secret_ref={"name": "", "key": ""},
    ),
    _ext_and_srv(
        "secretref-dotdot",
        REFERENCES,
        "InvalidExternalAuthConfig",
        "clientSecretRef.name '..' is not a valid Secret name",
        secret_ref={"name": "..", "key": "k"},
    ),
    _ext_and_srv(
        "secretref-traversal",
        REFERENCES,
        "InvalidExternalAuthConfig",
        "is not a valid Secret name",
        secret_ref={"name": "../configmaps/ctl-before-runconfig", "key": "runconfig.json"},
    ),
    _ext_and_srv(
        "secretref-bad-key",
        REFERENCES,
        "InvalidExternalAuthConfig",
        "clientSecretRef.key 'client/secret' is not a valid Secret key",
        secret_ref={"name": CLIENT_SECRET_NAME, "key": "client/secret"},
    ),
    _srv_only(
        "oidc-configmap-dotdot",
        REFERENCES,
        "InvalidOIDCConfig",
        "oidcConfig.configMap.name '..' is not a valid ConfigMap name",
        oidcConfig={"type": "configMap", "configMap": {"name": ".."}},
    ),
    _srv_only(
        "oidc-configmap-missing",
        REFERENCES,
        "OIDCConfigMapNotFound",
        "OIDC ConfigMap",
        oidcConfig={"type": "configMap", "configMap": {"name": "no-such-oidc"}},
    ),
    _srv_only(
        "authz-configmap-missing",
        REFERENCES,
        "AuthzConfigMapNotFound",
        "authorization ConfigMap",
        authzConfig={"type": "configMap", "configMap": {"name": "no-such-authz"}},
    ),
    _s(
        "authz-configmap-garbage",
        REFERENCES,
        (
            configmap("authz-configmap-garbage", **{"authz.json": "{not json"}),
            server(
                "authz-configmap-garbage",
                authzConfig={"type": "configMap", "configMap": {"name": "authz-configmap-garbage"}},
            ),
        ),
        "InvalidAuthzConfig",
        "failed to parse",
    ),
    _srv_only(
        "profile-configmap-missing",
        REFERENCES,
        "PermissionProfileNotFound",
        "permission profile ConfigMap",
        permissionProfile={"type": "configmap", "name": "no-such-profile", "key": "p.json"},
    ),
    _srv_only(
        "profile-unknown-builtin",
        REFERENCES,
        "InvalidPermissionProfile",
        "unknown builtin permission profile",
        permissionProfile={"type": "builtin", "name": "root"},
    ),
    _srv_only(
        "service-account-invalid",
        REFERENCES,
        "InvalidSpec",
        "serviceAccount 'Bad_SA' is not a valid ServiceAccount name",
        serviceAccount="Bad_SA",
    ),
    _srv_only(
        "secrets-invalid-name",
        REFERENCES,
        "InvalidSpec",
        "secrets[0].name 'Bad_Name' is not a valid Secret name",
        secrets=[{"name": "Bad_Name", "key": "k"}],
    ),
    # ---- cross-field problems the schema cannot see: surfaced ---------------------------------
    _srv_only(
        "sse-without-mcpport",
        CROSS_FIELD,
        "MissingTargetPort",
        "target port is required for transport type sse",
        transport="sse",
    ),
    _srv_only(
        "http-without-mcpport",
        CROSS_FIELD,
        "MissingTargetPort",
        "target port is required for transport type streamable-http",
        transport="streamable-http",
        auth="ctl-auth",
    ),
    _srv_only(
        "tools-with-comma",
        CROSS_FIELD,
        "InvalidToolsFilter",
        "cannot contain commas or newlines",
        tools=["fetch,delete"],
    ),
    _s(
        "toolconfig-empty-tool",
        CROSS_FIELD,
        (
            toolconfig("toolconfig-empty-tool", toolsFilter=["fetch", ""]),
            server("toolconfig-empty-tool", toolref="toolconfig-empty-tool"),
        ),
        "InvalidToolsFilter",
        "tool filter cannot contain empty values",
    ),
    _s(
        "toolconfig-newline-tool",
        VALUES,
        (
            toolconfig("toolconfig-newline-tool", toolsFilter=["fetch\ndelete"]),
            server("toolconfig-newline-tool", toolref="toolconfig-newline-tool"),
        ),
        "InvalidToolsFilter",
        "cannot contain commas or newlines",
    ),
    _srv_only(
        "volume-colon",
        CROSS_FIELD,
        "InvalidVolume",
        "invalid volume format",
        volumes=[{"name": "v", "hostPath": "/a:b", "mountPath": "/data"}],
    ),
    _srv_only(
        "pod-template-garbage",
        CROSS_FIELD,
        "InvalidPodTemplateSpec",
        "spec.containers must be a list",
        podTemplateSpec={"spec": {"containers": "mcp"}},
    ),
    _srv_only("image-empty", CROSS_FIELD, "InvalidSpec", "image is required", image=""),
    _srv_only(
        "resources-not-quantity",
        CROSS_FIELD,
        "InvalidResources",
        "resources.limits.cpu 'lots' is not a Kubernetes quantity",
        resources={"limits": {"cpu": "lots"}},
    ),
    # ---- token URL the pattern lets through: surfaced ----------------------------------------
    _ext_and_srv(
        "tokenurl-bad-ipv6",
        URLS,
        "InvalidExternalAuthConfig",
        "is not a valid URL: Invalid IPv6 URL",
        tokenUrl="https://[::1/token",
    ),
    _ext_and_srv(
        "tokenurl-bad-port",
        URLS,
        "InvalidExternalAuthConfig",
        "is not a valid URL: Port out of range",
        tokenUrl="https://idp.example.com:99999/token",
    ),
    _ext_and_srv(
        "tokenurl-no-host",
        URLS,
        "InvalidExternalAuthConfig",
        "is not a valid URL: it has no host",
        tokenUrl="https:///token",
    ),
    _ext_and_srv(
        "tokenurl-nul",
        VALUES,
        "InvalidExternalAuthConfig",
        "contains whitespace or control characters",
        tokenUrl="https://idp.example.com/\x00token",
    ),
    # ---- control characters in values: surfaced -----------------------------------------------
    _ext_and_srv(
        "audience-nul",
        VALUES,
        "InvalidExternalAuthConfig",
        "audience contains a NUL character",
        audience="mcp\x00backend",
    ),
    # ---- scopes are RFC 6749 scope-tokens: refused at admission (CEL) -----------------------
    _r("scope-nul", VALUES, ext("scope-nul", scopes=["openid", "read\x00write"]), SCOPE_MESSAGE),
    _r("scope-with-space", VALUES, ext("scope-with-space", scopes=["read write"]), SCOPE_MESSAGE),
    _r("scope-with-quote", VALUES, ext("scope-with-quote", scopes=['read"']), SCOPE_MESSAGE),
    _r("scope-with-backslash", VALUES, ext("scope-with-backslash", scopes=["a\\b"]), SCOPE_MESSAGE),
    _r("scope-with-tab", VALUES, ext("scope-with-tab", scopes=["a\tb"]), SCOPE_MESSAGE),
    _r("scope-empty", VALUES, ext("scope-empty", scopes=[""]), SCOPE_MESSAGE),
    _r("scope-unicode", VALUES, ext("scope-unicode", scopes=["läsen"]), SCOPE_MESSAGE),
    _srv_only(
        "env-value-newline",
        VALUES,
        "InvalidEnvVar",
        "environment variable value for A contains invalid characters",
        env=[{"name": "A", "value": "line1\nline2"}],
    ),
    _srv_only(
        "env-value-nul",
        VALUES,
        "InvalidEnvVar",
        "environment variable value for A contains invalid characters",
        env=[{"name": "A", "value": "a\x00b"}],
    ),
    _srv_only(
        "env-name-equals",
        VALUES,
        "InvalidEnvVar",
        "invalid environment variable key: 'A=B'",
        env=[{"name": "A=B", "value": "x"}],
    ),
    _srv_only(
        "env-name-empty",
        VALUES,
        "InvalidEnvVar",
        "environment variable key cannot be empty",
        env=[{"name": "", "value": "x"}],
    ),
    _srv_only(
        "env-name-huge",
        SIZE,
        "InvalidEnvVar",
        "characters)",
        env=[{"name": "K=" + "k" * 100_000, "value": "x"}],
    ),
    # ---- names the apiserver admits but derived objects cannot have: surfaced ---------------
    _srv_only(
        "name-with-dot",
        NAMES,
        "InvalidName",
        "Service name 'mcp-dotted.server-proxy' must be an RFC 1035 label",
        name="dotted.server",
    ),
    _srv_only(
        "name-54-chars-sse",
        NAMES,
        "InvalidName",
        "cannot be used",
        name="n" * 54,
        transport="sse",
        mcpPort=8080,
    ),
    _srv_only("name-53-chars-stdio", NAMES, "InvalidName", "over 52 characters", name="m" * 53),
    _srv_only("name-63-chars-stdio", NAMES, "InvalidName", "over 52 characters", name="k" * 63),
    _srv_only(
        "name-51-chars-sse", NAMES, "InvalidName", "headless", name="h" * 51, transport="sse", mcpPort=8080
    ),
    # ---- rendered objects the API server refuses: surfaced (ApplyRejected) --------------------
    _srv_only(
        "request-over-limit",
        RENDERED_OBJECTS,
        "ApplyRejected",
        "must be less than or equal to cpu limit",
        resources={"limits": {"cpu": "100m"}, "requests": {"cpu": "2"}},
    ),
    _srv_only(
        "negative-memory",
        RENDERED_OBJECTS,
        "ApplyRejected",
        "must be greater than or equal to 0",
        resources={"requests": {"memory": "-64Mi"}},
    ),
    _srv_only(
        "label-override-invalid",
        RENDERED_OBJECTS,
        "ApplyRejected",
        "metadata.labels: Invalid value",
        resourceOverrides={"proxyDeployment": {"labels": {"team": "bad value!"}}},
    ),
    _srv_only(
        "annotation-key-invalid",
        RENDERED_OBJECTS,
        "ApplyRejected",
        "metadata.annotations: Invalid value",
        resourceOverrides={"proxyService": {"annotations": {"bad key!": "x"}}},
    ),
    _srv_only(
        "proxy-env-name-invalid",
        RENDERED_OBJECTS,
        "ApplyRejected",
        "a valid environment variable name must consist",
        resourceOverrides={"proxyDeployment": {"env": [{"name": "A=B", "value": "x"}]}},
    ),
    _srv_only(
        "env-1mib",
        SIZE,
        "ApplyRejected",
        "ConfigMap env-1mib-runconfig was rejected by the API server",
        env=[{"name": "BIG", "value": "x" * MiB}],
    ),
    _s(
        "tools-80k",
        SIZE,
        (
            toolconfig("tools-80k", toolsFilter=[f"tool-{i:05d}" for i in range(80_000)]),
            server("tools-80k", toolref="tools-80k"),
        ),
        "ApplyRejected",
        "ConfigMap tools-80k-runconfig was rejected by the API server",
    ),
    # ---- awkward but valid: reconciled, values carried verbatim ------------------------------
    _rendered(
        "audience-emoji",
        VALUES,
        (
            ext("audience-emoji", audience="\U0001f510 backend \u2713"),
            server("audience-emoji", auth="audience-emoji"),
        ),
        (*TE_PATH, "audience"),
        "\U0001f510 backend \u2713",
    ),
    _rendered(
        "audience-rtl",
        VALUES,
        (
            ext("audience-rtl", audience="\u202emcp-backend\u200f"),
            server("audience-rtl", auth="audience-rtl"),
        ),
        (*TE_PATH, "audience"),
        "\u202emcp-backend\u200f",
    ),
    _rendered(
        "audience-newline",
        VALUES,
        (
            ext("audience-newline", audience="line1\nline2"),
            server("audience-newline", auth="audience-newline"),
        ),
        (*TE_PATH, "audience"),
        "line1\nline2",
    ),
    _rendered(
        "audience-line-separator",
        VALUES,
        (
            ext("audience-line-separator", audience="a\u2028b<&>"),
            server("audience-line-separator", auth="audience-line-separator"),
        ),
        (*TE_PATH, "audience"),
        "a\u2028b<&>",
    ),
    _rendered(
        "scopes-every-scope-token-character",
        VALUES,
        (
            ext("scopes-rfc6749", scopes=["!#$%&'()*+-./:;<=>?@[]^_`{|}~", "openid", "api://x/read"]),
            server("scopes-every-scope-token-character", auth="scopes-rfc6749"),
        ),
        (*TE_PATH, "scopes"),
        ["!#$%&'()*+-./:;<=>?@[]^_`{|}~", "openid", "api://x/read"],
    ),
    _rendered(
        "env-emoji-rtl",
        VALUES,
        (server("env-emoji-rtl", env=[{"name": "GREETING", "value": "\u202eolleh \U0001f44b"}]),),
        ("env_vars", "GREETING"),
        "\u202eolleh \U0001f44b",
    ),
    _rendered(
        "tokenurl-http",
        URLS,
        (
            ext("tokenurl-http", tokenUrl="http://keycloak.internal:8080/token"),
            server("tokenurl-http", auth="tokenurl-http"),
        ),
        (*TE_PATH, "token_url"),
        "http://keycloak.internal:8080/token",
    ),
    _rendered(
        "tokenurl-unicode-path",
        URLS,
        (
            ext("tokenurl-unicode-path", tokenUrl="https://idp.example.com/t\u00f6ken"),
            server("tokenurl-unicode-path", auth="tokenurl-unicode-path"),
        ),
        (*TE_PATH, "token_url"),
        "https://idp.example.com/t\u00f6ken",
    ),
    _rendered(
        "tools-10k",
        SIZE,
        (
            toolconfig("tools-10k", toolsFilter=[f"tool-{i}" for i in range(10_000)]),
            server("tools-10k", toolref="tools-10k"),
        ),
        ("tools_filter", 9_999),
        "tool-9999",
    ),
    _rendered(
        "headerstrategy-pruned",
        SCHEMA,
        (
            ext("headerstrategy-pruned", headerStrategy="custom"),
            server("headerstrategy-pruned", auth="headerstrategy-pruned"),
        ),
        (*TE_PATH, "header_strategy"),
        "replace",
    ),
    _rendered("port-integral-float", SCHEMA, (server("port-integral-float", port=9090.0),), ("port",), 9090),
)


# both of two alternatives set: the documented winner is used, the other ignored (not fetched)
CASES += (
    _rendered(
        "port-and-proxyport",
        CONFLICTS,
        (server("port-and-proxyport", port=8080, proxyPort=9000),),
        ("port",),
        9000,
    ),
    _rendered(
        "targetport-and-mcpport",
        CONFLICTS,
        (server("targetport-and-mcpport", transport="streamable-http", targetPort=7000, mcpPort=7001),),
        ("target_port",),
        7001,
    ),
    _rendered(
        "tools-and-toolconfigref",
        CONFLICTS,
        (server("tools-and-toolconfigref", toolref="ctl-tools", tools=["a", "b"]),),
        ("tools_filter",),
        CONTROL_TOOLS,
    ),
    _rendered(
        "oidc-inline-and-configmap",
        CONFLICTS,
        (
            server(
                "oidc-inline-and-configmap",
                oidcConfig={
                    "type": "inline",
                    "inline": {"issuer": "https://issuer.example.com"},
                    "configMap": {"name": "no-such-oidc-configmap"},
                },
            ),
        ),
        ("oidc_config", "Issuer"),
        "https://issuer.example.com",
    ),
    _rendered(
        "authz-inline-and-configmap",
        CONFLICTS,
        (
            server(
                "authz-inline-and-configmap",
                authzConfig={
                    "type": "inline",
                    "inline": {"policies": [POLICY]},
                    "configMap": {"name": "no-such-authz-configmap"},
                },
            ),
        ),
        ("authz_config", "cedar", "policies"),
        [POLICY],
    ),
)


# where the modes differ
CASES += (
    # thv proxy and upstream's thv run parse --token-exchange-scopes as a comma list
    _ext_and_srv(
        "scope-with-comma-flags",
        CONFLICTS,
        "InvalidExternalAuthConfig",
        "contains a comma, which --token-exchange-scopes cannot carry",
        scopes=["read,write"],
    ),
    _rendered(
        "scope-with-comma-configmap",
        CONFLICTS,
        (
            ext("scope-with-comma-configmap", scopes=["read,write"]),
            server("scope-with-comma-configmap", auth="scope-with-comma-configmap"),
        ),
        (*TE_PATH, "scopes"),
        ["read,write"],
    ),
)
#: only ConfigMap mode renders runconfig.json (every Rendered case reads it) and a RunConfig ConfigMap
_CONFIGMAP_ONLY = {"env-1mib", "tools-80k"}
_FLAGS_ONLY = {"scope-with-comma-flags"}
CASES = tuple(
    replace(c, modes=frozenset({CONFIGMAP}))
    if c.id in _CONFIGMAP_ONLY or isinstance(c.expect, Rendered)
    else replace(c, modes=frozenset({FLAGS}))
    if c.id in _FLAGS_ONLY
    else c
    for c in CASES
)


def cases(mode: str, *kinds: type) -> tuple[Case, ...]:
    """The cases for operator mode ``mode`` (``flags``/``configmap``), of expectation ``kinds``."""
    return tuple(c for c in CASES if mode in c.modes and (not kinds or isinstance(c.expect, kinds)))


def _check_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


_check_unique()
