"""The agent's fencing token and what it does with each build it sees: pure, so every case is tested.

A build is the agent's to work on only while its status names this worker at the attempt the agent
started it with. attempt and workerName only move forward (CEL rules), so once the token no longer
matches it never will again: the agent stops that build and writes nothing more to it.
"""

from dataclasses import dataclass
from enum import Enum

from buildfarm.api.builds import ACTIVE_PHASES, Build, BuildPhase


@dataclass(frozen=True)
class Token:
    """(workerName, attempt) of the assignment the agent works on, and the build's uid (a build deleted
    and created again under the same name is another build)."""

    uid: str
    worker: str
    attempt: int

    @classmethod
    def of(cls, build: Build) -> "Token":
        return cls(build.uid, build.status.worker_name, build.status.attempt)


def holds(token: Token, build: Build | None) -> bool:
    """Whether `build` (None: deleted) is still the assignment `token` names, and not finished."""
    return (
        build is not None
        and build.uid == token.uid
        and build.status.worker_name == token.worker
        and build.status.attempt == token.attempt
        and build.status.phase in ACTIVE_PHASES
    )


class Action(Enum):
    START = "start"  # assigned to us and not running here: start it when a slot is free
    CANCEL = "cancel"  # assigned to us, not started, and cancelled: write Cancelled
    ORPHANED = "orphaned"  # Running on us but not here: a previous agent process died with it
    STOP = "stop"  # running here, but the token no longer holds: kill it, write nothing
    CANCEL_RUNNING = "cancel-running"  # running here and cancelled: kill it, write Cancelled
    NONE = "none"


def decide(build: Build | None, worker: str, running: Token | None) -> Action:
    """What to do about one build the agent sees (from a watch event or a relist). `running` is the token
    of the run this agent has for the build, if any; `build` None means it is gone from the API."""
    if running is not None:
        if not holds(running, build):
            return Action.STOP
        assert build is not None
        return Action.CANCEL_RUNNING if build.spec.cancel else Action.NONE
    if build is None or build.status.worker_name != worker:
        return Action.NONE
    phase = build.status.phase
    if phase == BuildPhase.ASSIGNED:
        return Action.CANCEL if build.spec.cancel else Action.START
    if phase == BuildPhase.RUNNING:
        return Action.ORPHANED
    return Action.NONE
