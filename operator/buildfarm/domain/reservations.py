"""Worker slot reservations: which are still held, and which can safely be released.

A reservation (build, attempt N) on worker W is written before the build is assigned to W at attempt N.
It may be released only on evidence from the API server that attempt N can never again be on W: the build
read back (from a watch or a GET) at a later attempt, on another worker, requeued or final; or its absence
confirmed (a watch DELETED event, or a GET that answers 404 or another uid). attempt and workerName only
move forward (CEL rules) and final phases are final, so a build state seen in a stale cache can only
under-report staleness, never over-report it. Never age: a build that is merely not in the cache (yet) may
be assigned and running, so its slot counts until a read settles it. See docs/assignment-protocol.md.
"""

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from buildfarm.api.builds import Build, BuildPhase
from buildfarm.api.workers import Reservation
from buildfarm.domain.phases import is_terminal


class SlotState(Enum):
    HELD = "held"  # the build runs (or is assigned) on the worker at this attempt
    IN_FLIGHT = "in-flight"  # reserved, the build write has not landed (yet): may be rolled forward
    UNCONFIRMED = "unconfirmed"  # the build is not in view: the slot counts until a read settles it
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
    deleted: Collection[str] = (),
) -> SlotState:
    """`build` is the one of the reservation's namespace/name in view, if any; `deleted` holds the uids the
    API server reported gone (watch DELETED events, or reads). A namespace this operator does not watch is
    another operator's business: its reservations always count."""
    if build is None:
        if reservation.uid in deleted:
            return SlotState.STALE
        return SlotState.UNCONFIRMED if watched else SlotState.IN_FLIGHT
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
        and status.phase in (None, BuildPhase.PENDING)
        and status.attempt == reservation.attempt - 1
        and not build.spec.cancel
    )
