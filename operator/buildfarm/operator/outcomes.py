"""What users see: the status writes and Events for a build that is queued, waits, is assigned, fails or is
cancelled. Every write is conditional on the resourceVersion read; Events are posted only by the writer
that won, so several operators never duplicate them."""

import logging
from collections.abc import Callable
from datetime import datetime

from buildfarm.api.builds import ACTIVE_PHASES, Build, BuildPhase
from buildfarm.domain import transitions
from buildfarm.domain.phases import is_terminal
from buildfarm.errors import BuildfarmError, Conflict, NotFound, TransientError
from buildfarm.kube.gateway import Gateway

log = logging.getLogger(__name__)

MAX_CONFLICTS = 5
NORMAL, WARNING = "Normal", "Warning"


class Reporter:
    def __init__(self, gateway: Gateway, clock: Callable[[], datetime]) -> None:
        self.gateway = gateway
        self.clock = clock

    def queued(self, build: Build) -> Build:
        """Admit a new build into the queue (phase Pending)."""
        written = self.gateway.write_build_status(build, transitions.queued(build, self.clock()))
        self._event(written, NORMAL, "Queued", "Queue", written.status.message)
        return written

    def waiting(self, build: Build, reason: str, message: str) -> None:
        """Say why a pending build waits. Cosmetic: a lost race is fine, the next cycle says it again."""
        if build.status.phase != BuildPhase.PENDING or (build.status.reason, build.status.message) == (
            reason,
            message,
        ):
            return
        try:
            self.gateway.write_build_status(build, transitions.waiting(build, reason, message, self.clock()))
        except (Conflict, NotFound):
            return
        if build.status.reason != reason:
            log.info("Build %s/%s waits: %s: %s", build.namespace, build.name, reason, message)
            self._event(build, NORMAL, reason, "Schedule", message)

    def assigned(self, build: Build) -> None:
        log.info(
            "Assigned build %s/%s to worker %s (attempt %d)",
            build.namespace,
            build.name,
            build.status.worker_name,
            build.status.attempt,
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
                written = self.gateway.write_build_status(build, status)
            except Conflict:
                build = self.gateway.get_build(build.namespace, build.name)
                continue
            log.info("Build %s/%s lost its worker: %s", build.namespace, build.name, written.status.message)
            self._event(written, WARNING, status.reason, "Requeue", status.message)
            return
        raise TransientError(f"build {build.namespace}/{build.name} kept changing; will retry")

    def fail(self, build: Build, error: BuildfarmError) -> None:
        """Fail the build for good, with the error's reason and message. Retries until written."""
        self._finish(build, BuildPhase.FAILED, error.reason, error.message, WARNING)

    def cancel_pending(self, build: Build) -> None:
        """Cancel a build that has not started. Once assigned, stopping it is its agent's job."""
        self._finish(
            build,
            BuildPhase.CANCELLED,
            "Cancelled",
            "Cancelled by the user before it started.",
            NORMAL,
            only_while_pending=True,
        )

    def _finish(
        self,
        build: Build,
        phase: BuildPhase,
        reason: str,
        message: str,
        event_type: str,
        *,
        only_while_pending: bool = False,
    ) -> None:
        for _ in range(MAX_CONFLICTS):
            if is_terminal(build.status.phase):
                return
            if only_while_pending and build.status.phase != BuildPhase.PENDING:
                return  # assigned meanwhile (before the cancel): the agent sees spec.cancel and stops it
            status = transitions.finished(build, phase, reason, message, self.clock())
            try:
                written = self.gateway.write_build_status(build, status)
            except Conflict:
                build = self.gateway.get_build(build.namespace, build.name)
                continue
            self._event(written, event_type, reason, str(phase), message)
            return
        raise TransientError(f"build {build.namespace}/{build.name} kept changing; will retry")

    def _event(self, build: Build, type_: str, reason: str, action: str, note: str) -> None:
        try:
            self.gateway.post_event(build, type_=type_, reason=reason, action=action, note=note)
        except BuildfarmError as exc:
            # An Event is a courtesy; the status already says the same, so never fail a step for it.
            log.warning("Could not post event %s for %s/%s: %s", reason, build.namespace, build.name, exc)
