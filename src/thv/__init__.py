"""thv: a Kubernetes operator for MCP servers with RFC 8693 token exchange."""

__version__ = "0.1.0"
