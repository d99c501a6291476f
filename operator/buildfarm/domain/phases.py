"""The Build phase machine: which transitions are legal, and who may make them."""

from typing import Final

from buildfarm.api.builds import TERMINAL_PHASES, BuildPhase

P = BuildPhase

# Retries after an infrastructure failure go back to Pending (a new attempt is then assigned).
ALLOWED: Final[dict[BuildPhase | None, frozenset[BuildPhase]]] = {
    None: frozenset({P.PENDING, P.FAILED, P.CANCELLED}),
    P.PENDING: frozenset({P.ASSIGNED, P.FAILED, P.CANCELLED}),
    P.ASSIGNED: frozenset({P.RUNNING, P.PENDING, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.RUNNING: frozenset({P.PENDING, P.SUCCEEDED, P.FAILED, P.CANCELLED}),
    P.SUCCEEDED: frozenset(),
    P.FAILED: frozenset(),
    P.CANCELLED: frozenset(),
}


def can_transition(current: BuildPhase | None, target: BuildPhase) -> bool:
    return target == current or target in ALLOWED[current]


def is_terminal(phase: BuildPhase | None) -> bool:
    return phase in TERMINAL_PHASES
