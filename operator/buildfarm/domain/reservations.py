"""Worker slot reservations: which are still held, and which can safely be released.

A reservation (build, attempt N) on worker W is written before the build is assigned to W at attempt N.
It may be released only once the build's observed state proves that attempt N can never again be on W:
attempt and workerName only move forward (CEL rules), and terminal phases are final, so a state seen in a
stale cache can only under-report staleness, never over-report it. See docs/assignment-protocol.md.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

from buildfarm.api.builds import ACTIVE_PHASES, Build, BuildPhase
from buildfarm.api.workers import Reservation
from buildfarm.domain.phases import is_terminal

# How long a reservation for a build this operator has never seen is kept, to cover watch lag.
UNSEEN_BUILD_GRACE: Final = timedelta(minutes=5)


class SlotState(Enum):
    HELD = "held"  # the build runs (or is assigned) on the worker at this attempt
    IN_FLIGHT = "in-flight"  # reserved, the build write has not landed (yet): may be rolled forward
    STALE = "stale"  # can never become held again: release it


@dataclass(frozen=True)
class BuildRef:
    namespace: str
    name: str


def slot_state(
    reservation: Reservation,
    worker: str,
    build: Build | None,
    *,
    watched: bool,
    now: datetime,
    deleted: Collection[str] = (),
) -> SlotState:
    """`deleted` holds the uids of builds the watch saw deleted: a deletion is final, so their slots go
    at once rather than after the grace period for builds never seen."""
    if build is None:
        if reservation.uid in deleted:
            return SlotState.STALE
        if not watched or now - reservation.reserved_at < UNSEEN_BUILD_GRACE:
            return SlotState.IN_FLIGHT
        return SlotState.STALE
    status = build.status
    if build.uid != reservation.uid or is_terminal(status.phase) or status.attempt > reservation.attempt:
        return SlotState.STALE
    if status.attempt == reservation.attempt:
        # workerName can only be (re)set together with a new attempt, so at this attempt it is final.
        return SlotState.HELD if status.worker_name == worker else SlotState.STALE
    return SlotState.IN_FLIGHT


def can_roll_forward(reservation: Reservation, build: Build) -> bool:
    """The reserver may have died between its two writes; anyone may complete its assignment."""
    status = build.status
    return (
        build.uid == reservation.uid
        and status.phase == BuildPhase.PENDING
        and status.attempt == reservation.attempt - 1
        and not build.spec.cancel
    )


def is_active_on(build: Build, worker: str) -> bool:
    return build.status.phase in ACTIVE_PHASES and build.status.worker_name == worker
