"""The Role the operator renders for the proxy runner grants everything the runner does."""

from __future__ import annotations

from thv.render.rbac import PROXY_RUNNER_RULES
from thv.runner.rbac import RUNNER_NEEDS


def test_proxy_runner_role_covers_the_runner() -> None:
    granted = {(group, resource): set(verbs) for group, resource, verbs in PROXY_RUNNER_RULES}
    for need in RUNNER_NEEDS:
        for resource in need.resources:
            missing = set(need.verbs) - granted.get((need.group, resource), set())
            assert not missing, f"{need.group}/{resource}: Role lacks {sorted(missing)} ({need.why})"
