"""One vocabulary for the contract between the operator and the runner/proxy.

The operator's renderers (``thv.render.flags``, ``thv.render.runconfig``) write it; the runner
(``thv-runner``) and the proxy (``thv proxy``) read it. Everything both sides must spell the same
way lives here, once:

* token-type URNs, the RFC 8693 grant type and the short subject token types;
* :func:`normalize_subject_token_type` — the one normalisation (short form → URN, absence kept as
  ``""`` because upstream's RunConfig writes nothing then) and :func:`effective_subject_token_type`
  (absence → the access-token URN, what an exchange actually sends);
* :func:`is_header_name` — the one header-name rule (an RFC 9110 ``token``, at most 256 chars);
* middleware names (``middleware_configs[].type``) and header strategies;
* environment variable names the runner reads;
* the flag table :data:`FLAGS`: every flag ``thv-runner run`` accepts (thv's flag renderer output,
  upstream ``thv-proxyrunner run``'s flag set, and thv's own additions), and
  :func:`parse_flags`, the one tokenizer for it: ``--flag=value`` or ``--flag value``; boolean
  flags ``--flag`` or ``--flag=true|false`` (Go ``pflag`` style, never consuming the next
  argument); list flags repeatable; an unknown flag is an error naming it.

This module is pure (no I/O) and imports nothing from thv.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ENV_OIDC_CLIENT_SECRET",
    "ENV_TOKEN_EXCHANGE_CLIENT_SECRET",
    "FLAGS",
    "FLAGS_BY_NAME",
    "GRANT_TYPE_TOKEN_EXCHANGE",
    "HEADER_NAME_PATTERN",
    "HEADER_STRATEGIES",
    "HEADER_STRATEGY_CUSTOM",
    "HEADER_STRATEGY_REPLACE",
    "MIDDLEWARE_FLAGS",
    "MIDDLEWARE_TYPES",
    "SUBJECT_TOKEN_TYPES",
    "TOKEN_TYPE_ACCESS_TOKEN",
    "TOKEN_TYPE_ID_TOKEN",
    "TOKEN_TYPE_JWT",
    "ContractError",
    "Flag",
    "FlagKind",
    "ParsedFlags",
    "effective_subject_token_type",
    "flag",
    "is_header_name",
    "normalize_subject_token_type",
    "parse_bool",
    "parse_flags",
]


class ContractError(ValueError):
    """A value breaks the contract; the message names the flag or key (never a secret value)."""


# --- RFC 8693 -----------------------------------------------------------------------------------

GRANT_TYPE_TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_ACCESS_TOKEN: Final = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_ID_TOKEN: Final = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_JWT: Final = "urn:ietf:params:oauth:token-type:jwt"
#: the short subject token types the CRD accepts, and their URNs
SUBJECT_TOKEN_TYPES: Final[Mapping[str, str]] = {
    "access_token": TOKEN_TYPE_ACCESS_TOKEN,
    "id_token": TOKEN_TYPE_ID_TOKEN,
    "jwt": TOKEN_TYPE_JWT,
}


def normalize_subject_token_type(value: str | None) -> str:
    """Upstream ``NormalizeTokenType``: a short form becomes its URN, a URN stays, absence (``None``
    or ``""``) stays ``""``; anything else raises :class:`ContractError`."""
    if not value:
        return ""
    if value in SUBJECT_TOKEN_TYPES.values():
        return value
    if value in SUBJECT_TOKEN_TYPES:
        return SUBJECT_TOKEN_TYPES[value]
    raise ContractError(
        f"invalid subject token type {value!r}: must be one of: access_token, id_token, jwt "
        "(or their urn:ietf:params:oauth:token-type URN)"
    )


def effective_subject_token_type(value: str | None) -> str:
    """What an exchange sends: :func:`normalize_subject_token_type`, absence meaning access token."""
    return normalize_subject_token_type(value) or TOKEN_TYPE_ACCESS_TOKEN


# --- headers ------------------------------------------------------------------------------------

HEADER_STRATEGY_REPLACE: Final = "replace"
HEADER_STRATEGY_CUSTOM: Final = "custom"
HEADER_STRATEGIES: Final = (HEADER_STRATEGY_REPLACE, HEADER_STRATEGY_CUSTOM)
HEADER_NAME_MAX: Final = 256
#: RFC 9110 ``token`` (a field name); the CRD's ``externalTokenHeaderName`` pattern must be the same
HEADER_NAME_PATTERN: Final = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
_HEADER_NAME: Final = re.compile(HEADER_NAME_PATTERN)


def is_header_name(name: str) -> bool:
    """The one header-name rule: an RFC 9110 ``token`` of at most 256 characters."""
    return len(name) <= HEADER_NAME_MAX and _HEADER_NAME.match(name) is not None


# --- middleware names (``middleware_configs[].type``), in upstream order -------------------------

MW_AUTH: Final = "auth"
MW_TOKEN_EXCHANGE: Final = "tokenexchange"
MW_TOOL_FILTER: Final = "tool-filter"
MW_TOOL_CALL_FILTER: Final = "tool-call-filter"
MW_MCP_PARSER: Final = "mcp-parser"
MW_USAGE_METRICS: Final = "usagemetrics"
MW_TELEMETRY: Final = "telemetry"
MW_AUTHORIZATION: Final = "authorization"
MW_AUDIT: Final = "audit"
MIDDLEWARE_TYPES: Final = (
    MW_AUTH,
    MW_TOKEN_EXCHANGE,
    MW_TOOL_FILTER,
    MW_TOOL_CALL_FILTER,
    MW_MCP_PARSER,
    MW_USAGE_METRICS,
    MW_TELEMETRY,
    MW_AUTHORIZATION,
    MW_AUDIT,
)

# --- environment --------------------------------------------------------------------------------

ENV_TOKEN_EXCHANGE_CLIENT_SECRET: Final = "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET"
ENV_OIDC_CLIENT_SECRET: Final = "TOOLHIVE_OIDC_CLIENT_SECRET"
#: the runconfig.json paths upstream's proxy runner looks at, first existing wins
RUNCONFIG_PATHS: Final = ("/etc/runconfig/runconfig.json", "/etc/toolhive/runconfig.json", "runconfig.json")

# --- flags --------------------------------------------------------------------------------------


class FlagKind(enum.Enum):
    VALUE = "value"  # --x=v or --x v; the last one wins
    LIST = "list"  # repeatable; every value kept in order
    BOOL = "bool"  # --x or --x=true|false


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag: its spelling, kind, where it comes from, and who reads it."""

    name: str
    kind: FlagKind = FlagKind.VALUE
    help: str = ""
    short: str | None = None
    #: in upstream ``thv-proxyrunner run``'s flag set
    upstream: bool = True
    #: also a ``thv proxy`` flag (part of the proxy configuration)
    proxy: bool = False
    #: accepted for compatibility, with no effect on the configuration
    ignored: bool = False
    #: an MCP middleware setting (``thv proxy`` takes it too, read as ``thv-runner`` reads it)
    middleware: bool = False

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")


_V, _L, _B = FlagKind.VALUE, FlagKind.LIST, FlagKind.BOOL

FLAGS: Final[tuple[Flag, ...]] = (
    # workload and listen address
    Flag("--name", help="MCP server name (StatefulSet, labels)", proxy=True),
    Flag("--transport", help="stdio (default), sse or streamable-http"),
    Flag("--proxy-mode", help="for stdio: sse (default) or streamable-http"),
    Flag("--host", help="listen address", proxy=True),
    Flag("--proxy-port", help="listen port (default 8080)", proxy=True),
    Flag("--port", help="alias of --proxy-port", upstream=False, proxy=True),
    Flag("--target-port", help="MCP server port (sse/streamable-http)", proxy=True),
    Flag("--target-host", help="MCP server host", proxy=True),
    Flag("--target", help="MCP server base URL (thv proxy)", upstream=False, proxy=True),
    Flag("--target-url", help="alias of --target", upstream=False, proxy=True),
    Flag("--env", _L, "K=V for the MCP server container (repeatable)", short="-e"),
    Flag("--env-file-dir", help="directory of env files for the MCP server (Vault)"),
    Flag("--volume", _L, "host-path:container-path[:ro] (repeatable)", short="-v"),
    Flag("--secret", _L, "<secret>,target=<ENV> for the MCP server container (repeatable)"),
    Flag("--k8s-pod-patch", help="PodTemplateSpec JSON merged into the MCP server pod (strategic merge)"),
    Flag("--permission-profile", help="builtin profile name (none, network) or a profile file path"),
    Flag("--permission-profile-path", help="permission profile file", upstream=False),
    Flag("--isolate-network", _B),
    Flag("--trust-proxy-headers", _B),
    Flag("--foreground", _B, "accepted and ignored (the runner always runs in the foreground)", ignored=True),
    Flag("--debug", _B),
    # tools
    Flag("--tools", _L, "tool allow-list, comma-separated and/or repeated", middleware=True),
    Flag("--tools-override", help="JSON object {tool: {name, description}}", upstream=False, middleware=True),
    # incoming auth
    Flag("--oidc-issuer", proxy=True),
    Flag("--oidc-audience", proxy=True),
    Flag("--oidc-jwks-url", proxy=True),
    Flag("--oidc-client-id"),
    Flag("--oidc-client-secret", help="refused: use $TOOLHIVE_OIDC_CLIENT_SECRET"),
    Flag("--oidc-introspection-url"),
    Flag("--thv-ca-bundle", proxy=True),
    Flag("--jwks-auth-token-file", proxy=True),
    Flag("--jwks-allow-private-ip", _B, proxy=True),
    Flag("--resource-url", proxy=True),
    # token exchange (thv; upstream's thv run/thv proxy spellings)
    Flag("--token-exchange-url", help="token endpoint; enables the exchange", upstream=False, proxy=True),
    Flag("--token-exchange-client-id", upstream=False, proxy=True),
    Flag("--token-exchange-audience", upstream=False, proxy=True),
    Flag("--token-exchange-scopes", _L, "comma-separated and/or repeated", upstream=False, proxy=True),
    Flag("--token-exchange-subject-token-type", upstream=False, proxy=True),
    Flag("--token-exchange-header-name", upstream=False, proxy=True),
    Flag("--token-exchange-client-secret", help="refused: use the env variable", upstream=False, proxy=True),
    Flag("--token-exchange-client-secret-file", help="refused", upstream=False, proxy=True),
    # authorization, audit, telemetry
    Flag("--authz-config", help="authorization config file", middleware=True),
    Flag("--audit-config", help="audit config file", middleware=True),
    Flag("--enable-audit", _B, middleware=True),
    Flag("--otel-enabled", _B, middleware=True),
    Flag("--otel-endpoint", middleware=True),
    Flag("--otel-service-name", middleware=True),
    Flag("--otel-headers", _L, "k=v (repeatable)", middleware=True),
    Flag("--otel-env-vars", _L, "environment variable names to record (repeatable)", middleware=True),
    Flag("--otel-insecure", _B, middleware=True),
    Flag("--otel-tracing-enabled", _B, middleware=True),
    Flag("--otel-metrics-enabled", _B, middleware=True),
    Flag("--otel-tracing-sampling-rate", middleware=True),
    Flag("--enable-prometheus-metrics-path", _B, middleware=True),
    # thv proxy operation
    Flag("--token-exchange-timeout", help="seconds (default 10)", upstream=False, proxy=True),
    Flag("--token-cache-skew", help="seconds (default 30)", upstream=False, proxy=True),
    Flag("--no-token-cache", _B, upstream=False, proxy=True),
    # runner only
    Flag("--runconfig", help="runconfig.json path (default: the first of /etc/runconfig/…)", proxy=True),
    Flag(
        "--dry-run", _B, "print what would be applied and the effective config; no API calls", upstream=False
    ),
    Flag("--namespace", help="namespace of the workload (default: the pod's)", upstream=False),
    Flag(
        "--manifest",
        help="with --dry-run: read manifests instead of flags ('-' = stdin): thv render output, or "
        "MCPServer manifests with what they reference (resolved as thv render does)",
        short="-f",
        upstream=False,
    ),
    Flag(
        "--use-configmap",
        _B,
        "with --manifest of MCPServer manifests: resolve them in ConfigMap mode (as thv render --use-configmap)",
        upstream=False,
    ),
    Flag("--log-level", upstream=False, proxy=True),
    Flag("--log-format", help="json (default) or console", upstream=False, proxy=True),
)
FLAGS_BY_NAME: Final[Mapping[str, Flag]] = {
    **{f.name: f for f in FLAGS},
    **{f.short: f for f in FLAGS if f.short},
}
#: the MCP middleware flags ``thv proxy`` shares with ``thv-runner run``'s flag mode
MIDDLEWARE_FLAGS: Final[tuple[str, ...]] = tuple(f.name for f in FLAGS if f.middleware)
#: ``thv proxy``'s flags (a subset)
PROXY_FLAGS: Final[Mapping[str, Flag]] = {f.name: f for f in FLAGS if f.proxy}

_ALIASES: Final[Mapping[str, str]] = {"port": "proxy_port", "target_url": "target"}


def flag(name: str, value: str | bool | None = None) -> str:
    """Render one flag as the renderers must: ``--name=value`` (a value may start with ``-``)."""
    spec = FLAGS_BY_NAME.get(name)
    if spec is None:
        raise KeyError(f"{name} is not in the flag table")
    if value is None or value is True:
        if spec.kind is not FlagKind.BOOL:
            raise ValueError(f"{name} needs a value")
        return name
    if value is False:
        return f"{name}=false"
    return f"{name}={value}"


def parse_bool(text: str, where: str) -> bool:
    """Go ``strconv.ParseBool``."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ContractError(f"{where}: invalid boolean {text!r}")


@dataclass(frozen=True, slots=True)
class ParsedFlags:
    """The tokenizer's output: values by flag ``dest`` (aliases folded), the positionals before
    ``--``, and every argument after the first ``--``."""

    values: Mapping[str, str | bool | tuple[str, ...]]
    positionals: tuple[str, ...]
    rest: tuple[str, ...]
    #: the flags given, in order (spelled as the table spells them)
    given: tuple[str, ...]


def parse_flags(argv: Sequence[str], table: Mapping[str, Flag] = FLAGS_BY_NAME) -> ParsedFlags:
    """Tokenize ``argv`` against ``table`` (default: every flag). Raises :class:`ContractError`
    with one line naming the offending flag. Flags may come before or after positionals (as cobra
    allows); everything after the first bare ``--`` is kept verbatim."""
    values: dict[str, str | bool | tuple[str, ...]] = {}
    positionals: list[str] = []
    given: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return ParsedFlags(values, tuple(positionals), tuple(args[i:]), tuple(given))
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, eq, inline = arg.partition("=")
        spec = table.get(name)
        if spec is None:
            raise ContractError(f"unknown flag: {name}")
        given.append(spec.name)
        dest = _ALIASES.get(spec.dest, spec.dest)
        if spec.kind is FlagKind.BOOL:
            values[dest] = parse_bool(inline, spec.name) if eq else True
            continue
        if eq:
            value = inline
        else:
            if i >= len(args):
                raise ContractError(f"flag needs an argument: {spec.name}")
            value = args[i]
            i += 1
        if spec.kind is FlagKind.LIST:
            previous = values.get(dest, ())
            assert isinstance(previous, tuple)
            values[dest] = (*previous, value)
        else:
            values[dest] = value
    return ParsedFlags(values, tuple(positionals), (), tuple(given))
