"""The worker agent's metrics: its heartbeat, the builds it finished, why its executor could not run a
build, and its slots (read from the supervisor at each scrape, so they are levels, never drift)."""

from collections.abc import Callable
from typing import Final

from buildfarm.telemetry.catalog import FAST_BUCKETS, counter, gauge, histogram

LEASE_RENEW_SECONDS: Final = histogram(
    "agent",
    "buildfarm_agent_lease_renew_duration_seconds",
    "One renewal of the agent's heartbeat Lease.",
    FAST_BUCKETS,
)
LEASE_RENEW_FAILURES: Final = counter(
    "agent", "buildfarm_agent_lease_renew_failures_total", "Renewals of the heartbeat Lease that failed."
)
BUILDS: Final = counter(
    "agent",
    "buildfarm_agent_builds_total",
    "Builds this agent finished, by their final phase (Succeeded, Failed, Cancelled).",
    ("result",),
)
EXECUTOR_FAILURES: Final = counter(
    "agent",
    "buildfarm_agent_executor_failures_total",
    "Builds the executor could not run to an exit code: SourceUnavailable, AgentError.",
    ("reason",),
)
BUSY_SLOTS: Final = gauge("agent", "buildfarm_agent_busy_slots", "Builds running on this agent now.")
CAPACITY_SLOTS: Final = gauge(
    "agent", "buildfarm_agent_capacity_slots", "The agent's capacity (its Worker's)."
)


def watch_slots(busy: Callable[[], float], capacity: Callable[[], float]) -> None:
    """Read the slot gauges from the supervisor at each scrape."""
    BUSY_SLOTS.set_function(busy)
    CAPACITY_SLOTS.set_function(capacity)
