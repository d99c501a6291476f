"""Status conditions, Kubernetes style: one per type, lastTransitionTime moves only on a status change."""

from datetime import datetime

from buildfarm.api.meta import Condition, ConditionStatus

SCHEDULED = "Scheduled"


def set_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Return the conditions with `type_` set; the others are kept as they are."""
    previous = next((c for c in conditions if c.type == type_), None)
    changed = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
    )
    return [c for c in conditions if c.type != type_] + [updated]
