"""The next status of a Build for each transition the agent makes: pure, so it is table-tested, and the
agent only chooses which to write (conditionally, after checking its fencing token)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from buildfarm.api.builds import LOG_TAIL_MAX, Artifact, Build, BuildPhase, BuildStatus
from buildfarm.domain import transitions
from buildfarm.domain.phases import can_transition

STARTED: Final = "Started"
SUCCEEDED: Final = "Succeeded"
BUILD_FAILED: Final = "BuildFailed"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
CANCELLED: Final = "Cancelled"
HANDED_BACK: Final = "HandedBack"
AGENT_RESTARTED: Final = "AgentRestarted"
SETUP_FAILED: Final = "SetupFailed"
MESSAGE_MAX: Final = 4096
# Lines of the log quoted in a failure message.
FAILURE_LINES: Final = 20


def running(build: Build, now: datetime) -> BuildStatus:
    return _next(build, BuildPhase.RUNNING, STARTED, "The worker started the build.", started_at=now)


def log_tail(build: Build, tail: str) -> BuildStatus:
    return build.status.model_copy(update={"log_tail": bound_tail(tail)})


def succeeded(build: Build, artifacts: Sequence[Artifact], tail: str, now: datetime) -> BuildStatus:
    names = ", ".join(a.name for a in artifacts) or "no artifacts"
    return _final(
        build, BuildPhase.SUCCEEDED, SUCCEEDED, f"The build succeeded ({names}).", tail, now, artifacts
    )


def failed(build: Build, reason: str, message: str, tail: str, now: datetime) -> BuildStatus:
    return _final(build, BuildPhase.FAILED, reason, message[:MESSAGE_MAX], tail, now)


def cancelled(build: Build, tail: str, now: datetime) -> BuildStatus:
    message = "Cancelled by the user; the worker stopped the build."
    return _final(build, BuildPhase.CANCELLED, CANCELLED, message, tail, now)


def handed_back(build: Build, worker: str, now: datetime) -> BuildStatus:
    """Back to the queue at the same attempt, the worker cleared; handbacks + 1: the attempt is not spent."""
    message = f"Worker {worker} stopped and handed the build back unfinished; it waits for another worker."
    status = transitions.handed_back(build, HANDED_BACK, message, now)
    return status.model_copy(update={"log_tail": ""})


def orphaned(build: Build, worker: str) -> BuildStatus:
    """Running here when a previous agent process died: back to the queue; this attempt is spent."""
    return _next(
        build,
        BuildPhase.PENDING,
        AGENT_RESTARTED,
        f"The agent of worker {worker} restarted while the build ran; it waits for another attempt.",
        worker_name="",
    )


def _final(
    build: Build,
    phase: BuildPhase,
    reason: str,
    message: str,
    tail: str,
    now: datetime,
    artifacts: Sequence[Artifact] = (),
) -> BuildStatus:
    """The operator's final transition (conditions users wait on included), plus what the agent adds."""
    status = transitions.finished(build, phase, reason, message, now)
    update: dict[str, Any] = {"log_tail": bound_tail(tail)}
    if artifacts:
        update["artifacts"] = list(artifacts)
    return status.model_copy(update=update)


def exit_message(code: int, tail: str) -> str:
    """What a user reads when the build command failed: the exit code and the last lines of the log."""
    head = f"The build command exited with code {code}."
    if code < 0:
        head = f"The build command was killed by signal {-code}."
    lines = last_lines(tail, FAILURE_LINES)
    if not lines:
        return head
    return f"{head} Last lines:\n{lines}"[-MESSAGE_MAX:]


def last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-count:])


def bound_tail(text: str, limit: int = LOG_TAIL_MAX) -> str:
    """The end of `text` within `limit` characters, cut at a line start when there is one."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


def _next(build: Build, phase: BuildPhase, reason: str, message: str, **fields: Any) -> BuildStatus:
    if not can_transition(build.status.phase, phase):
        raise ValueError(f"a build cannot go from {build.status.phase} to {phase}")
    return build.status.model_copy(update={"phase": phase, "reason": reason, "message": message, **fields})
