"""MCP-aware middleware of the data plane (``thv proxy`` and ``thv-runner``): RFC 9728 discovery,
tool filter and overrides, Cedar authorization, audit and telemetry, in upstream's order
(:mod:`thv.middleware.chain`)."""
