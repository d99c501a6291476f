"""What users see: the status writes and Events for a build that is queued, waits, is assigned, fails or is
cancelled. Every write is conditional on the resourceVersion read, and leaves the agent's fields (log tail,
artifacts) as they are; Events are posted only by the writer that won, so several operators never
duplicate them."""

import logging
from collections.abc import Callable
from datetime import datetime

from buildfarm.api.builds import ACTIVE_PHASES, AGENT_STATUS_FIELDS, Build, BuildPhase
from buildfarm.domain import transitions
from buildfarm.domain.phases import is_terminal
from buildfarm.errors import BuildfarmError, Conflict, NotFound, TransientError
from buildfarm.kube.gateway import Gateway
from buildfarm.telemetry import operator as metrics
from buildfarm.telemetry.logs import about_build

log = logging.getLogger(__name__)

MAX_CONFLICTS = 5
NORMAL, WARNING = "Normal", "Warning"


class Reporter:
    def __init__(self, gateway: Gateway, clock: Callable[[], datetime]) -> None:
        self.gateway = gateway
        self.clock = clock

    def queued(self, build: Build) -> Build:
        """Put a new build into the queue (phase Pending, reason Queued), e.g. by hand or in tests; the
        scheduler itself writes a new build Pending only with the reason it must wait."""
        written = self.gateway.write_build_status(
            build, transitions.queued(build, self.clock()), leave=AGENT_STATUS_FIELDS
        )
        self._event(written, NORMAL, "Queued", "Queue", written.status.message)
        return written

    def waiting(self, build: Build, reason: str, message: str) -> Build | None:
        """Write a new or pending build Pending with why it waits, once per reason (see
        transitions.wait_is_news). The build as written, or None if nothing was written. Cosmetic for a
        pending build: a lost race is fine, the next cycle says it again."""
        if not transitions.wait_is_news(build, reason):
            return None
        try:
            written = self.gateway.write_build_status(
                build, transitions.waiting(build, reason, message, self.clock()), leave=AGENT_STATUS_FIELDS
            )
        except (Conflict, NotFound):
            return None
        log.info(
            "Build %s/%s waits: %s: %s",
            build.namespace,
            build.name,
            reason,
            message,
            extra=about_build(build),
        )
        self._event(written, NORMAL, reason, "Schedule", message)
        return written

    def assigned(self, build: Build) -> None:
        metrics.assigned(build)
        log.info(
            "Assigned build %s/%s to worker %s (attempt %d)",
            build.namespace,
            build.name,
            build.status.worker_name,
            build.status.attempt,
            extra=about_build(build),
        )
        self._event(build, NORMAL, "Assigned", "Assign", build.status.message)

    def worker_lost(self, build: Build, why: str) -> None:
        """Requeue (or fail, when out of attempts) a build whose worker is gone. Only while the build is
        still on that worker at that attempt: anything else means someone has moved it on already."""
        worker, attempt = build.status.worker_name, build.status.attempt
        for _ in range(MAX_CONFLICTS):
            if build.status.phase not in ACTIVE_PHASES or (
                build.status.worker_name,
                build.status.attempt,
            ) != (
                worker,
                attempt,
            ):
                return
            status = transitions.worker_lost(build, why, self.clock())
            try:
                written = self.gateway.write_build_status(build, status, leave=AGENT_STATUS_FIELDS)
            except Conflict:
                build = self.gateway.get_build(build.namespace, build.name)
                continue
            log.info(
                "Build %s/%s lost its worker: %s",
                build.namespace,
                build.name,
                written.status.message,
                extra=about_build(build),
            )
            self._event(written, WARNING, status.reason, "Requeue", status.message)
            return
        raise TransientError(f"build {build.namespace}/{build.name} kept changing; will retry")

    def fail(self, build: Build, error: BuildfarmError) -> None:
        """Fail the build for good, with the error's reason and message. Retries until written."""
        self._finish(build, BuildPhase.FAILED, error.reason, error.message, WARNING)

    def cancel(self, build: Build) -> None:
        """Cancel a build that has not started, or one whose worker is not Ready (so its agent cannot).
        A build assigned meanwhile to a healthy worker is its agent's to stop: only the state the plan
        saw (pending, or this worker at this attempt) is cancelled here."""
        started = build.status.phase in ACTIVE_PHASES
        message = (
            f"Cancelled by the user; its worker {build.status.worker_name} is not Ready to stop it."
            if started
            else "Cancelled by the user before it started."
        )
        self._finish(build, BuildPhase.CANCELLED, "Cancelled", message, NORMAL, still=_same_state(build))

    def deadline_exceeded(self, build: Build) -> None:
        """The backstop of the agent's own deadline: fail a build that ran past spec.timeoutSeconds."""
        message = (
            f"The build ran longer than spec.timeoutSeconds ({build.spec.timeout_seconds}s) and its worker "
            f"{build.status.worker_name} did not stop it; failed by the operator."
        )
        self._finish(build, BuildPhase.FAILED, DEADLINE_EXCEEDED, message, WARNING, still=_same_state(build))

    def _finish(
        self,
        build: Build,
        phase: BuildPhase,
        reason: str,
        message: str,
        event_type: str,
        *,
        still: Callable[[Build], bool] = lambda _: True,
    ) -> None:
        for _ in range(MAX_CONFLICTS):
            if is_terminal(build.status.phase) or not still(build):
                return  # finished, or moved on since the plan: whoever moved it owns it now
            status = transitions.finished(build, phase, reason, message, self.clock())
            try:
                written = self.gateway.write_build_status(build, status, leave=AGENT_STATUS_FIELDS)
            except Conflict:
                build = self.gateway.get_build(build.namespace, build.name)
                continue
            log.info(
                "Build %s/%s is %s: %s", build.namespace, build.name, phase, reason, extra=about_build(build)
            )
            self._event(written, event_type, reason, str(phase), message)
            return
        raise TransientError(f"build {build.namespace}/{build.name} kept changing; will retry")

    def _event(self, build: Build, type_: str, reason: str, action: str, note: str) -> None:
        try:
            self.gateway.post_event(build, type_=type_, reason=reason, action=action, note=note)
        except BuildfarmError as exc:
            # An Event is a courtesy; the status already says the same, so never fail a step for it.
            log.warning(
                "Could not post event %s for %s/%s: %s",
                reason,
                build.namespace,
                build.name,
                exc,
                extra=about_build(build),
            )


DEADLINE_EXCEEDED = "DeadlineExceeded"


def _same_state(seen: Build) -> Callable[[Build], bool]:
    """Whether a build read again is still where the plan saw it: pending, or active on the same worker
    at the same attempt."""
    if seen.status.phase not in ACTIVE_PHASES:
        return lambda build: build.status.phase in (None, BuildPhase.PENDING)
    token = (seen.status.worker_name, seen.status.attempt)
    return lambda build: (
        build.status.phase in ACTIVE_PHASES and (build.status.worker_name, build.status.attempt) == token
    )
