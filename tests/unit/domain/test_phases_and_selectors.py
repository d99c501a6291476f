"""Table tests for the phase machine, label selectors and conditions."""

from datetime import timedelta

import pytest

from buildfarm.api.builds import BuildPhase as P
from buildfarm.api.meta import ConditionStatus, LabelSelector
from buildfarm.domain.conditions import set_condition
from buildfarm.domain.phases import can_transition
from buildfarm.domain.selectors import describe, matches
from tests.factories import T0


@pytest.mark.parametrize(
    ("current", "target", "want"),
    [
        (None, P.PENDING, True),
        (P.PENDING, P.ASSIGNED, True),
        (P.ASSIGNED, P.RUNNING, True),
        (P.RUNNING, P.SUCCEEDED, True),
        (P.RUNNING, P.PENDING, True),  # infrastructure retry
        (P.PENDING, P.RUNNING, False),  # must be assigned first
        (P.SUCCEEDED, P.FAILED, False),
        (P.CANCELLED, P.PENDING, False),
        (P.FAILED, P.FAILED, True),
    ],
)
def test_can_transition(current: P | None, target: P, want: bool) -> None:
    assert can_transition(current, target) is want


@pytest.mark.parametrize(
    ("selector", "labels", "want"),
    [
        (None, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
    ],
)
def test_selector_matches(selector: dict[str, object] | None, labels: dict[str, str], want: bool) -> None:
    parsed = None if selector is None else LabelSelector.model_validate(selector)
    assert matches(parsed, labels) is want


def test_describe_selector() -> None:
    selector = LabelSelector.model_validate(
        {"matchLabels": {"xcode": "16"}, "matchExpressions": [{"key": "arch", "operator": "Exists"}]}
    )
    assert describe(selector) == "xcode=16,arch"


def test_condition_transition_time_moves_only_on_status_change() -> None:
    first = set_condition(
        [],
        type_="Scheduled",
        status=ConditionStatus.FALSE,
        reason="WorkerBusy",
        message="m",
        generation=1,
        now=T0,
    )
    later = T0 + timedelta(minutes=1)
    same = set_condition(
        first,
        type_="Scheduled",
        status=ConditionStatus.FALSE,
        reason="NoMatchingWorker",
        message="m2",
        generation=1,
        now=later,
    )
    flipped = set_condition(
        same,
        type_="Scheduled",
        status=ConditionStatus.TRUE,
        reason="Assigned",
        message="m3",
        generation=1,
        now=later,
    )
    assert same[0].last_transition_time == T0
    assert same[0].reason == "NoMatchingWorker"
    assert flipped[0].last_transition_time == later
