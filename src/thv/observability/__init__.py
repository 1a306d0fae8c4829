"""Metrics, tracing and logging set-up shared by the operator and the proxy."""
