"""What the pods of an MCPServer say about it (pure): the status writer's view of what runs.

An MCPServer has two kinds of pods, both labelled ``toolhive=true``, ``toolhive-name=<server>``
(upstream's labels): the **proxy runner** pods of the Deployment thv renders (``app=mcpserver``)
and the **MCP server** pods of the StatefulSet the runner creates (``app=<server>``).

* :func:`problem` -- the first pod that cannot run (an image that cannot be pulled, a container
  that keeps exiting, a container that cannot be created, a Failed pod), as a stable
  ``(reason, message)``: reasons the kubelet alternates between (``ErrImagePull`` /
  ``ImagePullBackOff``, ``Error`` / ``CrashLoopBackOff``) are folded into one, messages carry no
  restart counts or back-off delays, and a container restarted after a failure counts as
  crash-looping until it has run for :data:`STABLE_AFTER` seconds (``recheck_after`` says when to
  look again), so a crash loop does not rewrite the status (or repeat the Warning Event) at every
  restart. A runner that refuses its configuration exits with a one-line termination message
  (never a secret), quoted here.
* :func:`mcp_ready` -- whether an MCP server pod is Ready (``None`` when the runner has not
  created one: a runner that creates none, or a node that runs no pods).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

from thv.api.k8s import Pod, PodContainerStatus

#: the proxy runner pods' ``app`` label (upstream's ``labelsForMCPServer``)
RUNNER_APP: Final = "mcpserver"
IMAGE_PULL: Final = "ImagePullBackOff"
CRASH_LOOP: Final = "CrashLoopBackOff"
#: waiting reasons of a container that will not start without a change, folded to one reason
_WAITING: Final = MappingProxyType(
    {
        "ErrImagePull": IMAGE_PULL,
        IMAGE_PULL: IMAGE_PULL,
        "ErrImageNeverPull": IMAGE_PULL,
        "InvalidImageName": "InvalidImageName",
        CRASH_LOOP: CRASH_LOOP,
        "CreateContainerConfigError": "CreateContainerConfigError",
        "CreateContainerError": "CreateContainerError",
        "RunContainerError": "RunContainerError",
    }
)
#: longest termination message quoted
_MAX_TERMINATION = 300
#: seconds a container restarted after a failure must run before it counts as recovered
STABLE_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class PodProblem:
    """Why a pod of the server cannot run."""

    reason: str
    message: str
    #: look again after this many seconds (a restarted container that may be recovering)
    recheck_after: float | None = None


def _since(timestamp: str | None, now: float) -> float | None:
    """Seconds from an RFC 3339 ``timestamp`` to ``now`` (``None`` when unknown)."""
    if not timestamp:
        return None
    try:
        return now - datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def role(pod: Pod) -> str:
    """``"proxy runner"`` or ``"MCP server"``."""
    return "proxy runner" if (pod.metadata.labels or {}).get("app") == RUNNER_APP else "MCP server"


def _live(pods: Iterable[Pod]) -> list[Pod]:
    return sorted((p for p in pods if not p.metadata.deletion_timestamp), key=lambda p: p.metadata.name or "")


def _exit(cs: PodContainerStatus) -> str:
    """``exit code N: <termination message>`` of the last run, if known."""
    last = cs.last_state.terminated if cs.last_state is not None else None
    if last is None and cs.state is not None:
        last = cs.state.terminated
    if last is None:
        return ""
    text = " ".join((last.message or last.reason or "").split())
    if len(text) > _MAX_TERMINATION:
        text = text[: _MAX_TERMINATION - 1] + "…"
    code = f"exit code {last.exit_code}" if last.exit_code is not None else "exited"
    return f" ({code}: {text})" if text else f" ({code})"


def _container_problem(pod: Pod, cs: PodContainerStatus, now: float) -> PodProblem | None:
    where = f"{role(pod)} pod {pod.metadata.name}: container {cs.name}"
    state = cs.state
    waiting = state.waiting if state is not None else None
    reason = _WAITING.get(waiting.reason or "") if waiting is not None else None
    if reason == IMAGE_PULL:
        return PodProblem(IMAGE_PULL, f"{where} cannot pull its image")
    if reason == CRASH_LOOP:
        return PodProblem(CRASH_LOOP, f"{where} keeps exiting{_exit(cs)}")
    if reason is not None:
        assert waiting is not None
        return PodProblem(reason, f"{where}: {reason}: {waiting.message or ''}".rstrip(": "))
    terminated = state.terminated if state is not None else None
    if terminated is not None and terminated.exit_code not in (None, 0):
        return PodProblem(CRASH_LOOP, f"{where} keeps exiting{_exit(cs)}")
    last = cs.last_state.terminated if cs.last_state is not None else None
    if cs.restart_count > 0 and last is not None and last.exit_code not in (None, 0) and waiting is None:
        # restarted after a failure: the brief "running" between two back-offs of a crash loop
        # must not flip the status back and forth, so it is not recovered until it ran a while
        running = state.running if state is not None else None
        ran = _since(running.started_at if running is not None else None, now)
        if ran is None or ran < STABLE_AFTER:
            left = STABLE_AFTER - ran if ran is not None and ran < STABLE_AFTER else None
            return PodProblem(CRASH_LOOP, f"{where} keeps exiting{_exit(cs)}", left)
    return None


def problem(pods: Iterable[Pod], now: float) -> PodProblem | None:
    """The first pod (by name; runner pods first) that cannot run at ``now`` (epoch seconds), or
    ``None``."""
    live = _live(pods)
    live.sort(key=lambda p: role(p) != "proxy runner")
    for pod in live:
        st = pod.status
        if st is None:
            continue
        if st.phase == "Failed":
            detail = st.message or st.reason or "the pod failed"
            return PodProblem(st.reason or "PodFailed", f"{role(pod)} pod {pod.metadata.name}: {detail}")
        statuses: Sequence[PodContainerStatus] = [
            *(st.init_container_statuses or ()),
            *(st.container_statuses or ()),
        ]
        for cs in statuses:
            found = _container_problem(pod, cs, now)
            if found is not None:
                return found
    return None


def _ready(pod: Pod) -> bool:
    st = pod.status
    return st is not None and any(c.type == "Ready" and c.status == "True" for c in st.conditions or ())


def mcp_ready(pods: Iterable[Pod]) -> bool | None:
    """Whether an MCP server pod is Ready; ``None`` when there is no MCP server pod."""
    mcp = [p for p in _live(pods) if role(p) == "MCP server"]
    if not mcp:
        return None
    return any(_ready(p) for p in mcp)
