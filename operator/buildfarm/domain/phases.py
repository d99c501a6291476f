"""The Build phase machine: which transitions are legal, and who may make them."""

from typing import Final

from buildfarm.api.builds import PHASE_TRANSITIONS, TERMINAL_PHASES, BuildPhase

# The graph lives in the API layer, which also generates the API server's CEL rules from it.
ALLOWED: Final = PHASE_TRANSITIONS


def can_transition(current: BuildPhase | None, target: BuildPhase) -> bool:
    return target == current or target in ALLOWED[current]


def is_terminal(phase: BuildPhase | None) -> bool:
    return phase in TERMINAL_PHASES
