"""Table tests for the statuses the operator writes at each transition."""

from datetime import timedelta

import pytest

from buildfarm.api.builds import BuildPhase
from buildfarm.domain import transitions
from tests.factories import T0, build

LATER = T0 + timedelta(minutes=5)


def test_queued_keeps_the_first_queue_time() -> None:
    first = transitions.queued(build("b", phase=None), T0)
    again = transitions.queued(build("b").model_copy(update={"status": first}), LATER)
    assert (first.phase, first.reason, first.queued_at) == (BuildPhase.PENDING, "Queued", T0)
    assert again.queued_at == T0


def test_assigned_sets_the_fencing_token_and_the_condition() -> None:
    status = transitions.assigned(build("b", attempt=1), "mac-1", 2, T0)
    assert (status.phase, status.worker_name, status.attempt, status.assigned_at) == (
        BuildPhase.ASSIGNED,
        "mac-1",
        2,
        T0,
    )
    assert status.message == "Assigned to worker mac-1 (attempt 2 of 3)."
    [scheduled] = status.conditions
    assert (scheduled.type, scheduled.status, scheduled.reason, scheduled.observed_generation) == (
        "Scheduled",
        "True",
        "Assigned",
        1,
    )


def test_waiting_then_assigned_moves_the_transition_time_once() -> None:
    waiting = transitions.waiting(build("b"), "WorkerBusy", "busy", T0)
    still = transitions.waiting(
        build("b").model_copy(update={"status": waiting}), "NoMatchingWorker", "none", LATER
    )
    assert still.conditions[0].last_transition_time == T0
    assert still.reason == "NoMatchingWorker"


@pytest.mark.parametrize(
    ("name", "phase", "current_reason", "reason", "news"),
    [
        ("a new build is written Pending", None, "", "WorkerBusy", True),
        ("a pending build whose reason changed", "Pending", "WorkerBusy", "NoMatchingWorker", True),
        ("the same reason again: no write", "Pending", "WorkerBusy", "WorkerBusy", False),
        ("an assigned build does not wait", "Assigned", "Assigned", "WorkerBusy", False),
        ("a finished build does not wait", "Failed", "BuildFailed", "WorkerBusy", False),
    ],
)
def test_wait_is_news_once_per_reason(
    name: str, phase: str | None, current_reason: str, reason: str, news: bool
) -> None:
    b = build("b", phase=phase)
    b = b.model_copy(update={"status": b.status.model_copy(update={"reason": current_reason})})
    assert transitions.wait_is_news(b, reason) is news, name


@pytest.mark.parametrize(
    ("name", "phase", "target"),
    [
        ("a finished build cannot be failed again", "Succeeded", BuildPhase.FAILED),
        ("a cancelled build cannot be queued", "Cancelled", BuildPhase.PENDING),
    ],
)
def test_illegal_transitions_are_refused(name: str, phase: str, target: BuildPhase) -> None:
    with pytest.raises(ValueError, match="cannot go from"):
        transitions.finished(build("b", phase=phase), target, "X", "x", T0)


def test_finished_records_the_time_and_reason() -> None:
    status = transitions.finished(build("b"), BuildPhase.FAILED, "CredentialsNotFound", "no secret", T0)
    assert (status.phase, status.reason, status.finished_at, status.conditions[0].reason) == (
        BuildPhase.FAILED,
        "CredentialsNotFound",
        T0,
        "CredentialsNotFound",
    )


@pytest.mark.parametrize(
    ("name", "attempt", "want_phase", "want_reason", "want_worker"),
    [
        ("first attempt lost: requeued", 1, BuildPhase.PENDING, "Requeued", ""),
        ("attempts left: requeued", 2, BuildPhase.PENDING, "Requeued", ""),
        ("last attempt lost: failed", 3, BuildPhase.FAILED, "WorkerLost", "mac-1"),
    ],
)
def test_a_lost_worker_requeues_until_the_attempts_are_spent(
    name: str, attempt: int, want_phase: BuildPhase, want_reason: str, want_worker: str
) -> None:
    running = build("b", phase="Running", worker="mac-1", attempt=attempt)  # maxAttempts 3
    status = transitions.worker_lost(running, "Worker mac-1 does not exist", T0)
    assert (status.phase, status.reason, status.worker_name, status.attempt) == (
        want_phase,
        want_reason,
        want_worker,
        attempt,
    )
    assert status.message.startswith("Worker mac-1 does not exist; ")


@pytest.mark.parametrize(
    ("phase", "want_condition"),
    [(BuildPhase.SUCCEEDED, "Complete"), (BuildPhase.FAILED, "Failed"), (BuildPhase.CANCELLED, "Failed")],
)
def test_a_final_phase_sets_the_condition_users_wait_on(phase: BuildPhase, want_condition: str) -> None:
    running = build("b", phase="Running", worker="w", attempt=1)
    status = transitions.finished(running, phase, "Done", "done", T0)
    conditions = {c.type: c.status for c in status.conditions}
    assert conditions[want_condition] == "True"
    assert conditions["Scheduled"] == "False"


@pytest.mark.parametrize(
    ("name", "phase", "attempt", "handbacks", "want_handbacks"),
    [
        ("assigned, never handed back", "Assigned", 1, 0, 1),
        ("running on its second attempt", "Running", 2, 0, 1),
        ("handed back before", "Running", 3, 2, 3),
    ],
)
def test_handed_back_requeues_without_spending_the_attempt(
    name: str, phase: str, attempt: int, handbacks: int, want_handbacks: int
) -> None:
    on_worker = build("b", phase=phase, worker="mac-1", attempt=attempt)
    on_worker.status.handbacks = handbacks
    status = transitions.handed_back(on_worker, "Drained", "Worker mac-1 is drained.", T0)
    assert (status.phase, status.worker_name, status.attempt, status.handbacks) == (
        BuildPhase.PENDING,
        "",
        attempt,
        want_handbacks,
    )
    assert (status.reason, status.message) == ("Drained", "Worker mac-1 is drained.")
    [scheduled] = status.conditions
    assert (scheduled.type, scheduled.status, scheduled.reason, scheduled.last_transition_time) == (
        "Scheduled",
        "False",
        "Drained",
        T0,
    )
    assert on_worker.status.handbacks == handbacks, "the build read is not changed"


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("pending: nothing to hand back", "Pending"),
        ("not admitted yet", None),
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
        ("cancelled", "Cancelled"),
    ],
)
def test_only_a_build_on_a_worker_can_be_handed_back(name: str, phase: str | None) -> None:
    with pytest.raises(ValueError, match="only an Assigned or Running build can be handed back"):
        transitions.handed_back(build("b", phase=phase), "Drained", "x", T0)


def test_handbacks_do_not_spend_attempts_when_a_worker_is_lost() -> None:
    running = build("b", phase="Running", worker="mac-1", attempt=3)  # maxAttempts 3
    running.status.handbacks = 1  # one of the three assignments was handed back unfinished
    status = transitions.worker_lost(running, "Worker mac-1 is not Ready", T0)
    assert (status.phase, status.reason) == (BuildPhase.PENDING, "Requeued")
    assert status.message.endswith("requeued for attempt 3 of 3.")
