"""Restart requests on an MCPServer (upstream's annotations, reference §3 step 2), pure.

* ``mcpserver.toolhive.stacklok.dev/restarted-at``: an RFC 3339 time; a request is pending
  while it is newer than ``last-processed-restart`` (or that is absent or unparsable);
* ``mcpserver.toolhive.stacklok.dev/restart-strategy``: ``immediate`` deletes the proxy pods;
  anything else (``rolling``, the default, or an unknown value) rolls the Deployment through
  the pod-template annotation ``restarted-at``;
* ``mcpserver.toolhive.stacklok.dev/last-processed-restart``: the request last carried out,
  written by the operator (a script waits for it to equal its ``restarted-at``).

An unparsable ``restarted-at`` is ignored. Unlike upstream, the rolling annotation on the pod
template is the request's value (not the time of processing) and is kept on later applies, so
rendering stays deterministic and a later spec change does not roll the pods a second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from thv.api.crds import MCPServer
from thv.render import names

STRATEGY_ROLLING: Final = "rolling"
STRATEGY_IMMEDIATE: Final = "immediate"


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset; fractional seconds allowed), else ``None``."""
    if not value or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def strategy(server: MCPServer) -> str:
    """``immediate`` or ``rolling`` (the default, also for unknown values, as upstream)."""
    value = (server.metadata.annotations or {}).get(names.ANNOTATION_RESTART_STRATEGY)
    return STRATEGY_IMMEDIATE if value == STRATEGY_IMMEDIATE else STRATEGY_ROLLING


def requested(server: MCPServer) -> str | None:
    """The valid ``restarted-at`` request on ``server`` (processed or not), else ``None``."""
    value = (server.metadata.annotations or {}).get(names.ANNOTATION_RESTARTED_AT)
    return value if parse_time(value) is not None else None


def pending(server: MCPServer) -> str | None:
    """The ``restarted-at`` value still to carry out (newer than ``last-processed-restart``)."""
    request = requested(server)
    if request is None:
        return None
    at = parse_time(request)
    done = parse_time((server.metadata.annotations or {}).get(names.ANNOTATION_LAST_PROCESSED_RESTART))
    return request if done is None or (at is not None and at > done) else None


def rolling_restarted_at(server: MCPServer) -> str | None:
    """The pod-template ``restarted-at`` value: the valid request under the rolling strategy."""
    return requested(server) if strategy(server) == STRATEGY_ROLLING else None
