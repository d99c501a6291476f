"""Table tests for when a worker slot reservation may be released."""

from dataclasses import dataclass

import pytest

from buildfarm.api.builds import Build
from buildfarm.api.workers import Reservation
from buildfarm.domain.reservations import SlotState, can_roll_forward, slot_state
from tests.factories import build, reservation


@dataclass
class Case:
    name: str
    build: Build | None
    want: SlotState
    attempt: int = 2
    watched: bool = True
    deleted: bool = False


CASES = [
    Case(
        "assigned here at this attempt", build("b", phase="Assigned", worker="w", attempt=2), SlotState.HELD
    ),
    Case("running here at this attempt", build("b", phase="Running", worker="w", attempt=2), SlotState.HELD),
    Case("reserved, write not landed yet", build("b", phase="Pending", attempt=1), SlotState.IN_FLIGHT),
    Case("won by another worker", build("b", phase="Assigned", worker="x", attempt=2), SlotState.STALE),
    Case("requeued at this attempt", build("b", phase="Pending", attempt=2), SlotState.STALE),
    Case("moved on to a later attempt", build("b", phase="Assigned", worker="w", attempt=3), SlotState.STALE),
    Case("succeeded", build("b", phase="Succeeded", worker="w", attempt=2), SlotState.STALE),
    Case("cancelled while pending", build("b", phase="Cancelled", attempt=1), SlotState.STALE),
    Case("re-created under the same name", build("b", uid="other", attempt=1), SlotState.STALE),
    # Never judged by age: a build out of view may be running; only a read settles it.
    Case("not in view: counts until a read settles it", None, SlotState.UNCONFIRMED),
    Case("namespace not watched here: another operator's", None, SlotState.IN_FLIGHT, watched=False),
    Case("deletion seen (watch or read)", None, SlotState.STALE, deleted=True),
    Case(
        "deletion seen but the namespace is not watched", None, SlotState.STALE, watched=False, deleted=True
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_slot_state(case: Case) -> None:
    res = Reservation.model_validate(reservation("b", case.attempt))
    deleted = {res.uid} if case.deleted else set()
    assert slot_state(res, "w", case.build, watched=case.watched, deleted=deleted) is case.want


@pytest.mark.parametrize(
    ("name", "candidate", "want"),
    [
        ("pending at the previous attempt", build("b", attempt=1), True),
        ("cancel requested", build("b", attempt=1, cancel=True), False),
        ("already assigned", build("b", phase="Assigned", worker="w", attempt=2), False),
        ("other uid", build("b", attempt=1, uid="x"), False),
    ],
)
def test_can_roll_forward(name: str, candidate: Build, want: bool) -> None:
    assert can_roll_forward(Reservation.model_validate(reservation("b", 2)), candidate) is want
