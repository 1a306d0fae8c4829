"""Prometheus metrics of the operator (one registry, names prefixed ``thv_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

API_REQUESTS = Counter(
    "thv_api_requests_total",
    "Kubernetes API requests by verb, resource and HTTP code",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
API_WRITES = Counter(
    "thv_api_writes_total",
    "Kubernetes API writes (create, patch, apply, update, delete) by resource",
    ["verb", "resource"],
    registry=REGISTRY,
)
API_RETRIES = Counter(
    "thv_api_retries_total",
    "Kubernetes API requests retried (429, 5xx, transport)",
    ["resource"],
    registry=REGISTRY,
)
RECONCILES = Counter(
    "thv_reconcile_total", "Reconciles by subscriber and result", ["subscriber", "result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "thv_reconcile_seconds",
    "Reconcile latency by subscriber",
    ["subscriber"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
QUEUE_DEPTH = Gauge(
    "thv_bus_queue_depth", "Pending keys per bus subscriber", ["subscriber"], registry=REGISTRY
)
WATCH_RESTARTS = Counter(
    "thv_watch_restarts_total",
    "Watch streams restarted, by resource and reason",
    ["resource", "reason"],
    registry=REGISTRY,
)
WATCH_EVENTS = Counter(
    "thv_watch_events_total",
    "Watch events received by resource and type",
    ["resource", "type"],
    registry=REGISTRY,
)
STORE_OBJECTS = Gauge(
    "thv_store_objects", "Objects in the local store by resource", ["resource"], registry=REGISTRY
)
RESYNCS = Counter(
    "thv_resyncs_total",
    "Full passes announcing every cached key (the start's and each periodic resync)",
    registry=REGISTRY,
)
LEADER = Gauge("thv_leader", "1 while this process holds the leader lease", registry=REGISTRY)
