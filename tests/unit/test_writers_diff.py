"""The subset comparison behind "write only when something differs"."""

from thv.writers.diff import is_subset, quantity
from thv.writers.status import merge_conditions


def test_extra_live_fields_are_ignored() -> None:
    want = {"spec": {"template": {"spec": {"containers": [{"name": "toolhive", "image": "x"}]}}}}
    have = {
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {"containers": [{"name": "toolhive", "image": "x", "imagePullPolicy": "Always"}]}
            },
        }
    }
    assert is_subset(want, have)


def test_changed_value_or_list_length_differs() -> None:
    assert not is_subset({"a": {"b": 1}}, {"a": {"b": 2}})
    assert not is_subset({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert not is_subset({"a": "x"}, {})


def test_empty_values_equal_absent() -> None:
    assert is_subset({"a": {}, "b": [], "c": None, "d": False, "e": ""}, {})


def test_quantities_compare_by_value_under_resources() -> None:
    assert quantity("500m") == quantity("0.5")
    assert quantity("1Gi") == quantity("1024Mi")
    assert quantity("abc") is None
    assert is_subset({"resources": {"limits": {"cpu": "0.5"}}}, {"resources": {"limits": {"cpu": "500m"}}})
    assert not is_subset({"cpu": "0.5"}, {"cpu": "500m"})  # only under limits/requests


def test_condition_transition_time_kept_unless_status_flips() -> None:
    live = [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    same = merge_conditions(live, [{"type": "Ready", "status": "True", "reason": "R"}])
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    flipped = merge_conditions(live, [{"type": "Ready", "status": "False", "reason": "R"}])
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
