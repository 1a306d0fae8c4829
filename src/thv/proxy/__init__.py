"""``thv proxy``: an RFC 8693 token-exchange reverse proxy in front of an MCP server.

Public API:

* configuration — :class:`ProxyConfig`, :class:`TokenExchangeSettings`, :class:`OIDCSettings`,
  :class:`Secret`, :class:`ConfigError`, :func:`config_from_runconfig`, :func:`config_from_args`
  (both pure: same input and env ⇒ equal configs);
* the ASGI app — :func:`thv.proxy.app.build_app`;
* the CLI — :func:`thv.proxy.cli.add_proxy_arguments`, :func:`thv.proxy.cli.run_proxy`,
  :func:`thv.proxy.cli.main_from_args`.
"""

from thv.proxy.config import (
    ConfigError,
    OIDCSettings,
    ProxyConfig,
    Secret,
    TokenExchangeSettings,
    config_from_args,
    config_from_runconfig,
)

__all__ = [
    "ConfigError",
    "OIDCSettings",
    "ProxyConfig",
    "Secret",
    "TokenExchangeSettings",
    "config_from_args",
    "config_from_runconfig",
]
