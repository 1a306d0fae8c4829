"""The runner's one-line error: on stderr, and in the pod's termination message.

The kubelet mounts ``/dev/termination-log`` into every container and copies what was written
there into ``status.containerStatuses[].lastState.terminated.message``; the operator quotes it in
the MCPServer's status (``thv.subscribers.pod_health``), so a runner that refuses its
configuration says why in ``kubectl get mcpserver`` without anyone reading logs. Messages name
flags and keys, never values of secrets.
"""

from __future__ import annotations

import os
import sys
from typing import Final

TERMINATION_LOG: Final = "/dev/termination-log"


def fail(message: str, *, path: str = TERMINATION_LOG) -> None:
    """Print ``thv-runner: error: <message>``; also into ``path`` when it exists (in a pod)."""
    line = f"thv-runner: error: {message}"
    print(line, file=sys.stderr)
    if os.path.isfile(path):  # never create it outside a pod
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError:
            pass


__all__ = ["TERMINATION_LOG", "fail"]
