"""What the agent does with each build it sees, and when its fencing token still holds."""

import pytest

from buildfarm.domain.fencing import Action, Token, decide, holds
from tests.factories import build

ME = "mac-1"
MINE = Token("uid-ns-b", ME, 1)


@pytest.mark.parametrize(
    ("phase", "worker", "attempt", "cancel", "uid", "want"),
    [
        pytest.param("Assigned", ME, 1, False, None, True, id="assigned-to-me"),
        pytest.param("Running", ME, 1, False, None, True, id="running-on-me"),
        pytest.param("Running", ME, 1, True, None, True, id="cancel-does-not-change-the-token"),
        pytest.param("Running", ME, 2, False, None, False, id="attempt-moved-on"),
        pytest.param("Assigned", "mac-2", 2, False, None, False, id="reassigned"),
        pytest.param("Pending", "", 1, False, None, False, id="requeued-same-attempt"),
        pytest.param("Succeeded", ME, 1, False, None, False, id="finished"),
        pytest.param("Running", ME, 1, False, "other-uid", False, id="recreated-same-name"),
    ],
)
def test_holds(phase: str, worker: str, attempt: int, cancel: bool, uid: str | None, want: bool) -> None:
    seen = build("b", phase=phase, worker=worker, attempt=attempt, cancel=cancel, uid=uid)
    assert holds(MINE, seen) is want


def test_a_deleted_build_is_not_held() -> None:
    assert holds(MINE, None) is False


@pytest.mark.parametrize(
    ("phase", "worker", "attempt", "cancel", "running", "want"),
    [
        pytest.param("Assigned", ME, 1, False, None, Action.START, id="start"),
        pytest.param("Assigned", ME, 1, True, None, Action.CANCEL, id="cancel-before-start"),
        pytest.param("Running", ME, 1, False, None, Action.ORPHANED, id="running-but-not-here"),
        pytest.param("Assigned", "mac-2", 1, False, None, Action.NONE, id="someone-elses"),
        pytest.param("Pending", "", 0, False, None, Action.NONE, id="pending"),
        pytest.param("Succeeded", ME, 1, False, None, Action.NONE, id="finished"),
        pytest.param("Running", ME, 1, False, MINE, Action.NONE, id="running-here"),
        pytest.param("Assigned", ME, 1, False, MINE, Action.NONE, id="our-start-not-seen-yet"),
        pytest.param("Running", ME, 1, True, MINE, Action.CANCEL_RUNNING, id="cancel-running"),
        pytest.param("Assigned", "mac-2", 2, False, MINE, Action.STOP, id="reassigned-while-running"),
        pytest.param("Pending", "", 1, False, MINE, Action.STOP, id="requeued-while-running"),
        pytest.param("Failed", ME, 1, False, MINE, Action.STOP, id="failed-by-operator"),
    ],
)
def test_decide(
    phase: str, worker: str, attempt: int, cancel: bool, running: Token | None, want: Action
) -> None:
    seen = build("b", phase=phase, worker=worker, attempt=attempt, cancel=cancel)
    assert decide(seen, ME, running) is want


def test_a_deleted_build_that_runs_here_is_stopped() -> None:
    assert decide(None, ME, MINE) is Action.STOP
    assert decide(None, ME, None) is Action.NONE
