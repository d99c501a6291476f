"""Worker health from heartbeats, after Kubernetes' node lifecycle: an agent renews a Lease named after
its Worker; the operator alone writes the Worker's Ready condition from it. Pure: fed the Lease as read
and a clock.

- renewed within the grace period: Ready=True (LeaseRenewed);
- released by the agent on a graceful stop (holderIdentity empty): Ready=False (AgentStopped);
- not renewed for longer than the grace period, or never created: Ready=Unknown (LeaseExpired, NoLease).
Right after the operator starts it has not watched any Lease for a grace period yet, so during its
startup grace it only ever marks workers Ready, never not Ready (no mass requeue after a restart).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from buildfarm.api.meta import ConditionStatus

LEASE_RENEWED = "LeaseRenewed"
LEASE_EXPIRED = "LeaseExpired"
NO_LEASE = "NoLease"
AGENT_STOPPED = "AgentStopped"


@dataclass(frozen=True)
class Heartbeat:
    """The fields of a worker's Lease that matter here."""

    holder: str
    renewed: datetime | None
    duration_seconds: int


@dataclass(frozen=True)
class Verdict:
    status: ConditionStatus
    reason: str
    message: str


def readiness(heartbeat: Heartbeat | None, *, now: datetime, grace: timedelta) -> Verdict:
    if heartbeat is None:
        return Verdict(ConditionStatus.UNKNOWN, NO_LEASE, "The worker's agent has never renewed its Lease.")
    if not heartbeat.holder:
        return Verdict(
            ConditionStatus.FALSE, AGENT_STOPPED, "The worker's agent stopped and released its Lease."
        )
    if heartbeat.renewed is None:
        return Verdict(ConditionStatus.UNKNOWN, NO_LEASE, "The worker's agent has never renewed its Lease.")
    # A Lease may ask for longer than the grace period (e.g. an agent that renews rarely): honour it.
    allowed = max(grace, timedelta(seconds=heartbeat.duration_seconds))
    if now - heartbeat.renewed <= allowed:
        return Verdict(ConditionStatus.TRUE, LEASE_RENEWED, "The worker's agent renews its Lease.")
    since = heartbeat.renewed.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Verdict(
        ConditionStatus.UNKNOWN,
        LEASE_EXPIRED,
        f"The worker's agent has not renewed its Lease since {since} (grace {allowed.total_seconds():g}s).",
    )


def should_write(current: ConditionStatus | None, verdict: Verdict, *, in_startup_grace: bool) -> bool:
    """Whether to write the verdict: only on a change, and during the operator's startup grace only to
    mark a worker Ready (its Leases may not have been watched long enough to call one expired)."""
    if in_startup_grace and verdict.status != ConditionStatus.TRUE:
        return False
    return current != verdict.status
