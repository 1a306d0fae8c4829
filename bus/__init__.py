"""A small typed in-process event bus on anyio, msgspec and OpenTelemetry.

It knows nothing of Kubernetes.
"""
