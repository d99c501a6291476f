"""The next status of a Build for each transition the operator makes: pure, so it is table-tested and
the operator's writers only choose which one to write."""

from datetime import datetime
from typing import Any

from buildfarm.api.builds import ACTIVE_PHASES, Build, BuildPhase, BuildStatus
from buildfarm.api.meta import ConditionStatus
from buildfarm.domain.conditions import SCHEDULED, set_condition
from buildfarm.domain.phases import can_transition

QUEUED = "Queued"
ASSIGNED = "Assigned"
REQUEUED = "Requeued"
# Condition types a user can wait on, named after Job's.
COMPLETE = "Complete"
FAILED = "Failed"
WORKER_LOST = "WorkerLost"
DRAINED = "Drained"


def queued(build: Build, now: datetime) -> BuildStatus:
    """Admitted into the queue."""
    status = _next(build, BuildPhase.PENDING, QUEUED, "Waiting for a worker.", ConditionStatus.FALSE, now)
    status.queued_at = build.status.queued_at or now
    return status


def wait_is_news(build: Build, reason: str) -> bool:
    """Whether a build that must wait should be written Pending with `reason`: a new build, or a pending
    one whose reason changed. Not again while the reason stays the same (the message's details, such as a
    count of workers, may lag), so a long queue costs no write, and no work, per cycle."""
    status = build.status
    return status.phase is None or (status.phase == BuildPhase.PENDING and status.reason != reason)


def waiting(build: Build, reason: str, message: str, now: datetime) -> BuildStatus:
    """Pending for the reason given (e.g. WorkerBusy); a new build enters the queue with it."""
    status = _next(build, BuildPhase.PENDING, reason, message, ConditionStatus.FALSE, now)
    status.queued_at = build.status.queued_at or now
    return status


def assigned(build: Build, worker: str, attempt: int, now: datetime) -> BuildStatus:
    """Bound to `worker` for `attempt`."""
    counted = attempt - build.status.handbacks  # handed-back assignments are not held against the build
    message = f"Assigned to worker {worker} (attempt {counted} of {build.spec.max_attempts})."
    return _next(
        build,
        BuildPhase.ASSIGNED,
        ASSIGNED,
        message,
        ConditionStatus.TRUE,
        now,
        worker_name=worker,
        attempt=attempt,
        assigned_at=now,
    )


def worker_lost(build: Build, why: str, now: datetime) -> BuildStatus:
    """The build's worker is gone (`why` says how): back to the queue with the worker cleared, so the next
    assignment raises the attempt and the lost worker's late writes are refused; or Failed once
    spec.maxAttempts assignments have been spent. Handbacks (a drain, an agent's graceful stop) spent none.
    Infrastructure failures never count as build failures."""
    attempts = build.spec.max_attempts
    spent = attempts_spent(build)
    if spent >= attempts:
        message = f"{why}; all {attempts} attempt(s) allowed by spec.maxAttempts are used."
        return finished(build, BuildPhase.FAILED, WORKER_LOST, message, now)
    message = f"{why}; requeued for attempt {spent + 1} of {attempts}."
    return _next(build, BuildPhase.PENDING, REQUEUED, message, ConditionStatus.FALSE, now, worker_name="")


def attempts_spent(build: Build) -> int:
    """Assignments that count against spec.maxAttempts: every one but those handed back unfinished."""
    return max(0, build.status.attempt - build.status.handbacks)


def handed_back(build: Build, reason: str, message: str, now: datetime) -> BuildStatus:
    """Back to the queue from its worker without spending the attempt (e.g. the worker is drained): the
    worker is cleared, so the next assignment raises the attempt and fences off the old one, and
    status.handbacks counts this requeue, so it is not held against spec.maxAttempts."""
    if build.status.phase not in ACTIVE_PHASES:
        raise ValueError(f"only an Assigned or Running build can be handed back, not {build.status.phase}")
    return _next(
        build,
        BuildPhase.PENDING,
        reason,
        message,
        ConditionStatus.FALSE,
        now,
        worker_name="",
        handbacks=build.status.handbacks + 1,
    )


def finished(build: Build, phase: BuildPhase, reason: str, message: str, now: datetime) -> BuildStatus:
    """Succeeded, Failed or Cancelled; final. Also sets the condition users wait on, after Job's:
    `Complete=True` on success, `Failed=True` on failure or cancellation
    (`kubectl wait --for=condition=Complete build/NAME`)."""
    status = _next(build, phase, reason, message, ConditionStatus.FALSE, now, finished_at=now)
    done = COMPLETE if phase == BuildPhase.SUCCEEDED else FAILED
    status.conditions = set_condition(
        status.conditions,
        type_=done,
        status=ConditionStatus.TRUE,
        reason=reason,
        message=message,
        generation=build.generation,
        now=now,
    )
    return status


def _next(
    build: Build,
    phase: BuildPhase,
    reason: str,
    message: str,
    scheduled: ConditionStatus,
    now: datetime,
    **fields: Any,
) -> BuildStatus:
    if not can_transition(build.status.phase, phase):
        raise ValueError(f"a build cannot go from {build.status.phase} to {phase}")
    conditions = set_condition(
        build.status.conditions,
        type_=SCHEDULED,
        status=scheduled,
        reason=reason,
        message=message,
        generation=build.generation,
        now=now,
    )
    return build.status.model_copy(
        update={
            "phase": phase,
            "reason": reason,
            "message": message,
            "observed_generation": build.generation,
            "conditions": conditions,
            **fields,
        }
    )
