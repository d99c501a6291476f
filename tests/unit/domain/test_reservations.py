"""Table tests for when a worker slot reservation may be released."""

from dataclasses import dataclass
from datetime import timedelta

import pytest

from buildfarm.api.builds import Build
from buildfarm.api.workers import Reservation
from buildfarm.domain.reservations import UNSEEN_BUILD_GRACE, SlotState, can_roll_forward, slot_state
from tests.factories import T0, build, reservation


@dataclass
class Case:
    name: str
    build: Build | None
    want: SlotState
    attempt: int = 2
    watched: bool = True
    age: timedelta = timedelta(0)
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
    Case("not seen yet (watch lag)", None, SlotState.IN_FLIGHT),
    Case("not seen for long: deleted", None, SlotState.STALE, age=UNSEEN_BUILD_GRACE),
    Case("namespace not watched here", None, SlotState.IN_FLIGHT, watched=False, age=timedelta(days=1)),
    Case("seen deleted", None, SlotState.STALE, deleted=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_slot_state(case: Case) -> None:
    res = Reservation.model_validate(reservation("b", case.attempt))
    now = T0 + case.age
    deleted = {res.uid} if case.deleted else set()
    assert slot_state(res, "w", case.build, watched=case.watched, now=now, deleted=deleted) is case.want


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
