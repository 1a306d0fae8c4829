"""The status writer's reading of an MCPServer's pods (pure)."""

from __future__ import annotations

from typing import Any

import msgspec

from thv.api.k8s import Pod
from thv.subscribers.pod_health import CRASH_LOOP, IMAGE_PULL, STABLE_AFTER, mcp_ready, problem

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def pod(name: str, *, runner: bool = True, **status: Any) -> Pod:
    labels = {"toolhive": "true", "toolhive-name": "fetch", "app": "mcpserver" if runner else "fetch"}
    return msgspec.convert(
        {"metadata": {"name": name, "namespace": "ns", "labels": labels}, "status": status}, Pod
    )


def container(name: str = "toolhive", **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


def test_healthy_pods_have_no_problem_and_mcp_readiness_follows_the_ready_condition() -> None:
    runner = pod(
        "fetch-abc", phase="Running", containerStatuses=[container(ready=True, state={"running": {}})]
    )
    mcp = pod("fetch-0", runner=False, phase="Pending", conditions=[{"type": "Ready", "status": "False"}])
    assert problem([runner, mcp], NOW) is None
    assert mcp_ready([runner]) is None
    assert mcp_ready([runner, mcp]) is False
    ready = pod("fetch-0", runner=False, phase="Running", conditions=[{"type": "Ready", "status": "True"}])
    assert mcp_ready([runner, ready]) is True


def test_image_pull_errors_fold_into_one_stable_reason_and_message() -> None:
    messages = set()
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        p = pod(
            "fetch-0",
            runner=False,
            containerStatuses=[
                container(
                    "mcp",
                    state={"waiting": {"reason": reason, "message": f"{reason} at 12:00:0{len(reason)}"}},
                )
            ],
        )
        found = problem([p], NOW)
        assert found is not None and found.reason == IMAGE_PULL
        messages.add(found.message)
    assert messages == {"MCP server pod fetch-0: container mcp cannot pull its image"}


def test_a_crash_loop_quotes_the_runner_termination_message_without_restart_counts() -> None:
    last = {
        "terminated": {"exitCode": 2, "reason": "Error", "message": "thv-runner: error: unknown flag --bogus"}
    }
    found = set()
    for restarts, state in (
        (1, {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}),
        (2, {"running": {}}),
        (3, {"terminated": {"exitCode": 2, "message": "thv-runner: error: unknown flag --bogus"}}),
    ):
        p = pod(
            "fetch-abc", containerStatuses=[container(restartCount=restarts, state=state, lastState=last)]
        )
        got = problem([p], NOW)
        assert got is not None and got.reason == CRASH_LOOP
        found.add(got.message)
    assert found == {
        "proxy runner pod fetch-abc: container toolhive keeps exiting (exit code 2: thv-runner: error: unknown flag --bogus)"
    }


def test_a_recovered_container_and_a_deleting_pod_are_not_problems() -> None:
    last = {"terminated": {"exitCode": 1, "reason": "Error"}}
    recovered = pod(
        "a",
        containerStatuses=[
            container(
                restartCount=4,
                ready=True,
                state={"running": {"startedAt": "2027-01-15T07:00:00Z"}},
                lastState=last,
            )
        ],
    )
    deleting = pod("b", containerStatuses=[container(state={"waiting": {"reason": "ImagePullBackOff"}})])
    deleting.metadata.deletion_timestamp = "2026-11-30T00:00:00Z"
    assert problem([recovered, deleting], NOW) is None


def test_runner_pods_are_reported_before_mcp_pods_and_failed_pods_count() -> None:
    mcp = pod(
        "a-mcp",
        runner=False,
        containerStatuses=[
            container("mcp", state={"waiting": {"reason": "InvalidImageName", "message": "bad ref"}})
        ],
    )
    runner = pod("z-runner", phase="Failed", reason="Evicted", message="The node was low on memory.")
    got = problem([mcp, runner], NOW)
    assert got is not None and (got.reason, got.message) == (
        "Evicted",
        "proxy runner pod z-runner: The node was low on memory.",
    )
    got = problem([mcp], NOW)
    assert got is not None and got.message == "MCP server pod a-mcp: container mcp: InvalidImageName: bad ref"


def test_a_restarted_container_counts_as_crash_looping_until_it_ran_a_while() -> None:
    last = {"terminated": {"exitCode": 2, "reason": "Error"}}
    started = "2027-01-15T07:59:50Z"  # 10 s before NOW
    p = pod(
        "fetch-0",
        runner=False,
        containerStatuses=[
            container(
                "mcp", restartCount=3, ready=True, state={"running": {"startedAt": started}}, lastState=last
            )
        ],
    )
    got = problem([p], NOW)
    assert got is not None and got.reason == CRASH_LOOP
    assert got.recheck_after == STABLE_AFTER - 10
    assert problem([p], NOW + STABLE_AFTER) is None
