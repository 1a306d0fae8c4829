"""The one typed configuration of ``thv proxy`` and its two pure sources.

Both the operator's ConfigMap (``runconfig.json``) and the command-line flags parse into the same
:class:`ProxyConfig`, through :func:`config_from_runconfig` and :func:`config_from_args`. Both are
deterministic: the only input besides their argument is the environment mapping passed as ``env``
(default :data:`os.environ`), read for ``TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET`` only, so a flag
rendering parsed back compares equal (``==``) to the ConfigMap it mirrors.

Normalisation applied by both sources, so equal meaning gives equal values:

* ``subject_token_type``: short forms ``access_token``/``id_token``/``jwt`` become the full URN;
  absent or empty means the access-token URN;
* ``header_strategy``: absent means ``replace``; with ``replace`` the external header name is
  dropped (upstream ignores it); ``custom`` requires it;
* ``scopes``: a tuple in the given order, blanks dropped (flags may be repeated and/or
  comma-separated);
* the client secret: config ``client_secret`` if non-empty, else the env variable, else ``None``;
  it is held in a :class:`Secret`, whose ``repr`` never shows the value.
"""

from __future__ import annotations

import argparse
import hmac
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from thv.api import contract

SECRET_ENV: Final = contract.ENV_TOKEN_EXCHANGE_CLIENT_SECRET
GRANT_TYPE_TOKEN_EXCHANGE: Final = contract.GRANT_TYPE_TOKEN_EXCHANGE
TOKEN_TYPE_ACCESS_TOKEN: Final = contract.TOKEN_TYPE_ACCESS_TOKEN
TOKEN_TYPE_ID_TOKEN: Final = contract.TOKEN_TYPE_ID_TOKEN
TOKEN_TYPE_JWT: Final = contract.TOKEN_TYPE_JWT
SUBJECT_TOKEN_TYPES: Final[Mapping[str, str]] = contract.SUBJECT_TOKEN_TYPES
DEFAULT_LISTEN_HOST: Final = "127.0.0.1"
DEFAULT_LISTEN_PORT: Final = 8080
DEFAULT_TARGET_HOST: Final = "127.0.0.1"
DEFAULT_EXCHANGE_TIMEOUT: Final = 10.0
DEFAULT_CACHE_SKEW: Final = 30.0

HeaderStrategy = Literal["replace", "custom"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key or flag (never a secret)."""


class Secret:
    """A string that never shows itself in ``repr``/``str``; compare with ``==`` (constant time)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))


class TokenExchangeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 8693 exchange parameters (upstream ``tokenexchange.Config``, normalised)."""

    token_url: str
    client_id: str = ""
    client_secret: Secret | None = None
    audience: str = ""
    scopes: tuple[str, ...] = ()
    subject_token_type: str = TOKEN_TYPE_ACCESS_TOKEN
    header_strategy: HeaderStrategy = "replace"
    external_token_header_name: str | None = None


class OIDCSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Incoming-token validation (upstream ``auth.TokenValidatorConfig``; no introspection)."""

    issuer: str
    audience: str | None = None
    jwks_url: str | None = None
    ca_cert_path: str | None = None
    auth_token_file: str | None = None
    allow_private_ip: bool = False
    resource_url: str | None = None


class ProxyConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``thv proxy`` needs. ``target_url`` may be ``None`` only before the CLI's
    ``--target`` is applied (a runconfig without ``target_port``)."""

    listen_host: str = DEFAULT_LISTEN_HOST
    listen_port: int = DEFAULT_LISTEN_PORT
    target_url: str | None = None
    name: str | None = None
    oidc: OIDCSettings | None = None
    token_exchange: TokenExchangeSettings | None = None
    # operation (flags only; a runconfig leaves the defaults)
    exchange_timeout: float = DEFAULT_EXCHANGE_TIMEOUT
    cache_enabled: bool = True
    cache_skew: float = DEFAULT_CACHE_SKEW


# ------------------------------------------------------------------------------------------------
# shared normalisation


def effective_subject_token_type(value: str | None) -> str:
    """Short form or URN → URN; empty → access-token URN; anything else is an error
    (:func:`thv.api.contract.effective_subject_token_type`)."""
    try:
        return contract.effective_subject_token_type(value)
    except contract.ContractError as exc:
        raise ConfigError(f"subject_token_type: {exc}") from None


def _split_scopes(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)


def _secret(config_value: str | None, env: Mapping[str, str]) -> Secret | None:
    if config_value:
        return Secret(config_value)
    from_env = env.get(SECRET_ENV, "")
    return Secret(from_env) if from_env else None


def _token_exchange(
    *,
    token_url: str | None,
    client_id: str | None,
    client_secret: str | None,
    audience: str | None,
    scopes: Sequence[str],
    subject_token_type: str | None,
    header_strategy: str | None,
    external_token_header_name: str | None,
    env: Mapping[str, str],
    where: str,
) -> TokenExchangeSettings:
    if not token_url:
        raise ConfigError(f"{where}: token_url is required")
    strategy = header_strategy or "replace"
    if strategy not in ("replace", "custom"):
        raise ConfigError(f"{where}: header_strategy must be 'replace' or 'custom', not {strategy!r}")
    header = external_token_header_name or None
    if strategy == "custom" and not header:
        raise ConfigError(f"{where}: header_strategy 'custom' needs external_token_header_name")
    if header is not None and not contract.is_header_name(header):
        raise ConfigError(f"{where}: external_token_header_name {header!r} is not a valid header name")
    return TokenExchangeSettings(
        token_url=token_url,
        client_id=client_id or "",
        client_secret=_secret(client_secret, env),
        audience=audience or "",
        scopes=_split_scopes(scopes),
        subject_token_type=effective_subject_token_type(subject_token_type),
        header_strategy="custom" if strategy == "custom" else "replace",
        external_token_header_name=header if strategy == "custom" else None,
    )


def _target_url(host: str | None, port: int | None) -> str | None:
    if not port:
        return None
    host = host or DEFAULT_TARGET_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _check_target(url: str | None, where: str) -> str | None:
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: target URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def _check_port(port: int, where: str) -> int:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port {port} out of range")
    return port


# ------------------------------------------------------------------------------------------------
# runconfig.json (ConfigMap mode)


class _RCTokenExchange(msgspec.Struct, kw_only=True):
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    audience: str | None = None
    scopes: list[str] | None = None
    subject_token_type: str | None = None
    header_strategy: str | None = None
    external_token_header_name: str | None = None


class _RCOIDC(msgspec.Struct, kw_only=True):
    # upstream TokenValidatorConfig has no json tags: Go field names are the keys
    Issuer: str | None = None
    Audience: str | None = None
    JWKSURL: str | None = None
    ClientID: str | None = None
    CACertPath: str | None = None
    AuthTokenFile: str | None = None
    AllowPrivateIP: bool | None = None
    IntrospectionURL: str | None = None
    ResourceURL: str | None = None


class _RCMiddleware(msgspec.Struct, kw_only=True):
    type: str
    parameters: dict[str, Any] | None = None


class _RunConfig(msgspec.Struct, kw_only=True):
    name: str | None = None
    host: str | None = None
    port: int | None = None
    target_host: str | None = None
    target_port: int | None = None
    oidc_config: _RCOIDC | None = None
    thv_ca_bundle: str | None = None
    jwks_auth_token_file: str | None = None
    token_exchange_config: _RCTokenExchange | None = None
    middleware_configs: list[_RCMiddleware] | None = None


def _rc_token_exchange(rc: _RunConfig, env: Mapping[str, str]) -> TokenExchangeSettings | None:
    found: list[tuple[str, _RCTokenExchange]] = []
    for index, mw in enumerate(rc.middleware_configs or []):
        if mw.type != contract.MW_TOKEN_EXCHANGE:
            continue
        params = (mw.parameters or {}).get("token_exchange_config")
        if params is None:
            raise ConfigError(f"middleware_configs[{index}]: tokenexchange without token_exchange_config")
        try:
            found.append(
                (f"middleware_configs[{index}]", msgspec.convert(params, _RCTokenExchange, strict=True))
            )
        except msgspec.ValidationError as exc:
            raise ConfigError(f"middleware_configs[{index}].parameters: {exc}") from None
    if rc.token_exchange_config is not None:
        found.append(("token_exchange_config", rc.token_exchange_config))
    settings = [
        _token_exchange(
            token_url=te.token_url,
            client_id=te.client_id,
            client_secret=te.client_secret,
            audience=te.audience,
            scopes=te.scopes or [],
            subject_token_type=te.subject_token_type,
            header_strategy=te.header_strategy,
            external_token_header_name=te.external_token_header_name,
            env=env,
            where=where,
        )
        for where, te in found
    ]
    if not settings:
        return None
    if any(s != settings[0] for s in settings[1:]):
        raise ConfigError(
            "runconfig has more than one token-exchange configuration and they differ: "
            + ", ".join(where for where, _ in found)
        )
    return settings[0]


def _rc_oidc(rc: _RunConfig) -> OIDCSettings | None:
    oidc: _RCOIDC | None = None
    for index, mw in enumerate(rc.middleware_configs or []):
        if mw.type == contract.MW_AUTH:
            params = (mw.parameters or {}).get("oidc_config")
            if params is not None:
                try:
                    oidc = msgspec.convert(params, _RCOIDC, strict=True)
                except msgspec.ValidationError as exc:
                    raise ConfigError(f"middleware_configs[{index}].parameters: {exc}") from None
    if oidc is None:
        oidc = rc.oidc_config
    if oidc is None:
        return None
    if not oidc.Issuer:
        if oidc.Audience or oidc.JWKSURL:
            raise ConfigError("oidc_config: Issuer is required for token validation")
        return None  # e.g. only ResourceURL: nothing to validate
    return OIDCSettings(
        issuer=oidc.Issuer,
        audience=oidc.Audience or None,
        jwks_url=oidc.JWKSURL or None,
        ca_cert_path=oidc.CACertPath or rc.thv_ca_bundle or None,
        auth_token_file=oidc.AuthTokenFile or rc.jwks_auth_token_file or None,
        allow_private_ip=bool(oidc.AllowPrivateIP),
        resource_url=oidc.ResourceURL or None,
    )


def config_from_runconfig(
    data: bytes | str | Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> ProxyConfig:
    """Parse an upstream ``runconfig.json`` (bytes/str JSON or an already-decoded mapping).

    Reads ``host``/``port`` (listen address), ``target_host``/``target_port`` (upstream MCP
    server), ``name``, the ``tokenexchange`` middleware entry (or top-level
    ``token_exchange_config``) and the ``auth`` middleware entry (or top-level ``oidc_config``).
    Unknown keys are ignored. Raises :class:`ConfigError`.
    """
    env = os.environ if env is None else env
    try:
        if isinstance(data, bytes | str):
            rc = msgspec.json.decode(data, type=_RunConfig)
        else:
            rc = msgspec.convert(dict(data), _RunConfig, strict=True)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"runconfig is not valid JSON: {exc}") from None
    except msgspec.ValidationError as exc:
        raise ConfigError(f"runconfig: {exc}") from None
    return ProxyConfig(
        listen_host=rc.host or DEFAULT_LISTEN_HOST,
        listen_port=_check_port(rc.port if rc.port is not None else DEFAULT_LISTEN_PORT, "port"),
        target_url=_target_url(rc.target_host, rc.target_port),
        name=rc.name or None,
        oidc=_rc_oidc(rc),
        token_exchange=_rc_token_exchange(rc, env),
    )


# ------------------------------------------------------------------------------------------------
# flags


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a :class:`ProxyConfig` (added to ``thv proxy`` by the CLI)."""
    g = parser.add_argument_group("listen and target")
    g.add_argument("--host", default=None, help=f"listen address (default {DEFAULT_LISTEN_HOST})")
    g.add_argument(
        "--port", "--proxy-port", dest="port", type=int, default=None, help="listen port (default 8080)"
    )
    g.add_argument(
        "--target",
        "--target-url",
        dest="target",
        default=None,
        help="MCP server base URL, e.g. http://127.0.0.1:9090 (overrides --target-host/--target-port)",
    )
    g.add_argument("--target-host", default=None, help=f"MCP server host (default {DEFAULT_TARGET_HOST})")
    g.add_argument("--target-port", type=int, default=None, help="MCP server port")
    g.add_argument("--name", default=None, help="MCP server name (logs and spans)")
    g.add_argument(
        "--runconfig",
        default=None,
        metavar="FILE",
        help="upstream runconfig.json (ConfigMap mode); the other flags then only override the "
        "listen address and target",
    )

    te = parser.add_argument_group("token exchange (RFC 8693); secret from $" + SECRET_ENV)
    te.add_argument("--token-exchange-url", default=None, help="token endpoint; enables the exchange")
    te.add_argument("--token-exchange-client-id", default=None)
    te.add_argument("--token-exchange-audience", default=None)
    te.add_argument(
        "--token-exchange-scopes",
        action="append",
        default=None,
        metavar="SCOPES",
        help="scopes, comma-separated and/or repeated",
    )
    te.add_argument(
        "--token-exchange-subject-token-type",
        default=None,
        help="access_token (default), id_token, jwt or a full URN",
    )
    te.add_argument(
        "--token-exchange-header-name",
        default=None,
        help="put the exchanged token in this header (strategy 'custom'); default: replace Authorization",
    )
    # refused on purpose: a secret on the command line is visible in ps and in the pod spec
    te.add_argument("--token-exchange-client-secret", default=None, help=argparse.SUPPRESS)
    te.add_argument("--token-exchange-client-secret-file", default=None, help=argparse.SUPPRESS)

    oidc = parser.add_argument_group("incoming token validation (OIDC)")
    oidc.add_argument("--oidc-issuer", default=None)
    oidc.add_argument("--oidc-audience", default=None)
    oidc.add_argument("--oidc-jwks-url", default=None, help="default: from the issuer's discovery document")
    oidc.add_argument("--thv-ca-bundle", default=None, help="CA bundle for the JWKS/discovery fetch")
    oidc.add_argument(
        "--jwks-auth-token-file", default=None, help="bearer token file for the JWKS/discovery fetch"
    )
    oidc.add_argument("--jwks-allow-private-ip", action="store_true", default=False)
    oidc.add_argument("--resource-url", default=None, help="this protected resource's URL")

    ops = parser.add_argument_group("operation")
    ops.add_argument(
        "--token-exchange-timeout",
        type=float,
        default=DEFAULT_EXCHANGE_TIMEOUT,
        metavar="SECONDS",
        help=f"token endpoint timeout (default {DEFAULT_EXCHANGE_TIMEOUT:g})",
    )
    ops.add_argument(
        "--token-cache-skew",
        type=float,
        default=DEFAULT_CACHE_SKEW,
        metavar="SECONDS",
        help=f"drop cached exchanged tokens this long before they expire (default {DEFAULT_CACHE_SKEW:g})",
    )
    ops.add_argument(
        "--no-token-cache", action="store_true", help="exchange on every request (as upstream does)"
    )
    ops.add_argument("--log-level", default=None, help="default $THV_LOG_LEVEL, else INFO")
    ops.add_argument("--log-format", choices=("json", "console"), default="json")


class ProxyFlags(msgspec.Struct, frozen=True, kw_only=True):
    """The proxy's flag values, typed (``None``: not given). Filled by the one tokenizer
    (:func:`thv.api.contract.parse_flags`) for ``thv-runner`` and :func:`config_from_args`, or
    from ``thv proxy``'s argparse namespace; turned into a :class:`ProxyConfig` by
    :func:`config_from_flags`, the one flag source."""

    name: str | None = None
    host: str | None = None
    proxy_port: int | None = None
    target: str | None = None
    target_host: str | None = None
    target_port: int | None = None
    runconfig: str | None = None
    token_exchange_url: str | None = None
    token_exchange_client_id: str | None = None
    token_exchange_audience: str | None = None
    token_exchange_scopes: tuple[str, ...] | None = None
    token_exchange_subject_token_type: str | None = None
    token_exchange_header_name: str | None = None
    token_exchange_client_secret: str | None = None
    token_exchange_client_secret_file: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    thv_ca_bundle: str | None = None
    jwks_auth_token_file: str | None = None
    jwks_allow_private_ip: bool = False
    resource_url: str | None = None
    token_exchange_timeout: float = DEFAULT_EXCHANGE_TIMEOUT
    token_cache_skew: float = DEFAULT_CACHE_SKEW
    no_token_cache: bool = False


_INT_FLAGS: Final = ("proxy_port", "target_port")
_FLOAT_FLAGS: Final = ("token_exchange_timeout", "token_cache_skew")
_PROXY_FIELDS: Final = frozenset(ProxyFlags.__struct_fields__)


def proxy_flags(values: Mapping[str, str | bool | tuple[str, ...]]) -> ProxyFlags:
    """Type the proxy's part of tokenized flag values (other keys are ignored)."""
    typed: dict[str, object] = {}
    for key, value in values.items():
        if key not in _PROXY_FIELDS:
            continue
        flag = "--" + key.replace("_", "-")
        if key in _INT_FLAGS:
            try:
                typed[key] = int(str(value))
            except ValueError:
                raise ConfigError(f"{flag}: invalid int value {value!r}") from None
        elif key in _FLOAT_FLAGS:
            try:
                typed[key] = float(str(value))
            except ValueError:
                raise ConfigError(f"{flag}: invalid float value {value!r}") from None
        else:
            typed[key] = value
    return msgspec.convert(typed, ProxyFlags)


_TE_FLAGS: Final = (
    "token_exchange_url",
    "token_exchange_client_id",
    "token_exchange_audience",
    "token_exchange_scopes",
    "token_exchange_subject_token_type",
    "token_exchange_header_name",
)
_OIDC_FLAGS: Final = (
    "oidc_issuer",
    "oidc_audience",
    "oidc_jwks_url",
    "thv_ca_bundle",
    "jwks_auth_token_file",
)


def config_from_flags(
    flags: ProxyFlags, *, env: Mapping[str, str] | None = None, runconfig: bytes | None = None
) -> ProxyConfig:
    """The one flag source: typed flag values → :class:`ProxyConfig`.

    With ``--runconfig FILE`` (or ``runconfig`` bytes, already read by the caller) the file is the
    source and only the listen/target/name/operation flags may override it; token-exchange and
    OIDC flags are then refused, so there is one source of truth.
    """
    env = os.environ if env is None else env
    if flags.token_exchange_client_secret is not None or flags.token_exchange_client_secret_file is not None:
        raise ConfigError(f"client secrets are not accepted as flags; set ${SECRET_ENV} instead")
    if flags.runconfig is not None or runconfig is not None:
        mixed = [f for f in (*_TE_FLAGS, *_OIDC_FLAGS) if getattr(flags, f) is not None]
        if mixed or flags.jwks_allow_private_ip or flags.resource_url is not None:
            names = ", ".join("--" + f.replace("_", "-") for f in mixed) or "OIDC flags"
            raise ConfigError(f"--runconfig cannot be combined with {names}")
        if runconfig is None:
            assert flags.runconfig is not None
            try:
                with open(flags.runconfig, "rb") as fh:
                    runconfig = fh.read()
            except OSError as exc:
                raise ConfigError(f"--runconfig: cannot read {flags.runconfig}: {exc.strerror}") from None
        base = config_from_runconfig(runconfig, env=env)
    else:
        token_exchange = None
        if flags.token_exchange_url is not None:
            token_exchange = _token_exchange(
                token_url=flags.token_exchange_url,
                client_id=flags.token_exchange_client_id,
                client_secret=None,
                audience=flags.token_exchange_audience,
                scopes=flags.token_exchange_scopes or (),
                subject_token_type=flags.token_exchange_subject_token_type,
                header_strategy=(
                    contract.HEADER_STRATEGY_CUSTOM
                    if flags.token_exchange_header_name
                    else contract.HEADER_STRATEGY_REPLACE
                ),
                external_token_header_name=flags.token_exchange_header_name,
                env=env,
                where="--token-exchange-*",
            )
        else:
            stray = [f for f in _TE_FLAGS if getattr(flags, f) is not None]
            if stray:
                raise ConfigError(f"--token-exchange-url is required with --{stray[0].replace('_', '-')}")
        oidc = None
        if flags.oidc_issuer:
            oidc = OIDCSettings(
                issuer=flags.oidc_issuer,
                audience=flags.oidc_audience or None,
                jwks_url=flags.oidc_jwks_url or None,
                ca_cert_path=flags.thv_ca_bundle or None,
                auth_token_file=flags.jwks_auth_token_file or None,
                allow_private_ip=bool(flags.jwks_allow_private_ip),
                resource_url=flags.resource_url or None,
            )
        elif flags.oidc_audience or flags.oidc_jwks_url:
            raise ConfigError("--oidc-issuer is required for incoming token validation")
        base = ProxyConfig(token_exchange=token_exchange, oidc=oidc)
    target = base.target_url
    if flags.target is not None:
        target = flags.target
    elif flags.target_port is not None:
        target = _target_url(flags.target_host or _host_of(target), flags.target_port)
    elif flags.target_host is not None:
        raise ConfigError("--target-host needs --target-port")
    return msgspec.structs.replace(
        base,
        listen_host=flags.host if flags.host is not None else base.listen_host,
        listen_port=(
            _check_port(flags.proxy_port, "--proxy-port")
            if flags.proxy_port is not None
            else base.listen_port
        ),
        target_url=_check_target(target, "--target"),
        name=flags.name if flags.name is not None else base.name,
        exchange_timeout=_positive(flags.token_exchange_timeout, "--token-exchange-timeout"),
        cache_enabled=not flags.no_token_cache,
        cache_skew=_positive(flags.token_cache_skew, "--token-cache-skew", zero_ok=True),
    )


#: the MCP middleware flags ``thv proxy`` shares with ``thv-runner run``'s flag mode (marked in
#: :data:`thv.api.contract.FLAGS`; read by ``thv.runner.config.middleware_from_flags``)
MIDDLEWARE_FLAGS: Final = contract.MIDDLEWARE_FLAGS


def add_middleware_arguments(parser: argparse.ArgumentParser) -> None:
    """``thv proxy``'s middleware flags, spelled and typed as in the contract (booleans Go-style:
    ``--x`` or ``--x=true|false``)."""
    g = parser.add_argument_group(
        "MCP middleware (as thv-runner run's flag mode; not with --runconfig, which carries its own)"
    )
    for name in MIDDLEWARE_FLAGS:
        spec = contract.FLAGS_BY_NAME[name]
        if spec.kind is contract.FlagKind.LIST:
            g.add_argument(name, action="append", default=None, help=spec.help or None)
        elif spec.kind is contract.FlagKind.BOOL:
            g.add_argument(
                name, nargs="?", const="true", default=None, metavar="true|false", help=spec.help or None
            )
        else:
            g.add_argument(name, default=None, help=spec.help or None)


def middleware_values(ns: argparse.Namespace) -> dict[str, str | bool | tuple[str, ...]]:
    """The middleware flags given to ``thv proxy``, as :func:`thv.api.contract.parse_flags`
    values (lists as tuples, booleans parsed)."""
    out: dict[str, str | bool | tuple[str, ...]] = {}
    for name in MIDDLEWARE_FLAGS:
        spec = contract.FLAGS_BY_NAME[name]
        value = getattr(ns, spec.dest, None)
        if value is None:
            continue
        if spec.kind is contract.FlagKind.LIST:
            out[spec.dest] = tuple(value)
        elif spec.kind is contract.FlagKind.BOOL:
            try:
                out[spec.dest] = contract.parse_bool(str(value), name)
            except contract.ContractError as exc:
                raise ConfigError(str(exc)) from None
        else:
            out[spec.dest] = str(value)
    return out


def config_from_namespace(ns: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> ProxyConfig:
    """``thv proxy``'s argparse namespace (see :func:`add_config_arguments`) → :class:`ProxyConfig`
    through :func:`config_from_flags`."""
    values = {k: v for k, v in vars(ns).items() if v is not None}
    if "port" in values:
        values["proxy_port"] = values.pop("port")
    if isinstance(values.get("token_exchange_scopes"), list):
        values["token_exchange_scopes"] = tuple(values["token_exchange_scopes"])
    return config_from_flags(proxy_flags(values), env=env)


def _positive(value: float, flag: str, *, zero_ok: bool = False) -> float:
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{flag} must be {'>= 0' if zero_ok else '> 0'}")
    return float(value)


def _host_of(url: str | None) -> str | None:
    if url is None:
        return None
    from urllib.parse import urlsplit

    return urlsplit(url).hostname


def config_from_args(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> ProxyConfig:
    """Parse ``thv proxy`` arguments (without the ``proxy`` word) into a :class:`ProxyConfig`.

    Tokenized by :func:`thv.api.contract.parse_flags` against ``thv proxy``'s flags
    (``--log-*`` are accepted and ignored). Raises :class:`ConfigError` instead of exiting;
    an unknown flag or a positional argument is an error.
    """
    try:
        parsed = contract.parse_flags(argv, contract.PROXY_FLAGS)
    except contract.ContractError as exc:
        raise ConfigError(str(exc)) from None
    if parsed.positionals or parsed.rest:
        raise ConfigError(f"unexpected argument: {(parsed.positionals or parsed.rest)[0]}")
    return config_from_flags(proxy_flags(parsed.values), env=env)


def describe(config: ProxyConfig) -> dict[str, Any]:
    """A loggable summary (secrets shown only as present/absent)."""
    out: dict[str, Any] = {
        "listen": f"{config.listen_host}:{config.listen_port}",
        "target": config.target_url,
        "name": config.name,
        "token_cache": f"on (skew {config.cache_skew:g} s)" if config.cache_enabled else "off",
        "exchange_timeout": config.exchange_timeout,
    }
    te = config.token_exchange
    if te is not None:
        out["token_exchange"] = {
            "token_url": te.token_url,
            "client_id": te.client_id,
            "client_secret": "set" if te.client_secret else "unset",
            "audience": te.audience,
            "scopes": list(te.scopes),
            "subject_token_type": te.subject_token_type,
            "header_strategy": te.header_strategy,
            "external_token_header_name": te.external_token_header_name,
        }
    if config.oidc is not None:
        out["oidc"] = {"issuer": config.oidc.issuer, "audience": config.oidc.audience}
    return out
