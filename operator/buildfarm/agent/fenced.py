"""Fenced writes: every status write re-reads the build, checks the fencing token on what it read, and
writes with that resourceVersion as precondition. A conflict (409, or a CEL rule refusing the write)
means re-read and re-check; never a blind retry. When the token no longer holds, Lost is raised and
nothing is written."""

import logging
import time
from collections.abc import Callable

from buildfarm.api.builds import Build, BuildPhase, BuildStatus
from buildfarm.domain.fencing import Token, holds
from buildfarm.errors import BuildfarmError, Conflict, NotFound, TransientError
from buildfarm.kube.gateway import Gateway

log = logging.getLogger(__name__)

MAX_CONFLICTS = 5


class Lost(Exception):
    """The build is no longer this agent's (reassigned, requeued, finished by someone else, deleted)."""


class FencedWriter:
    def __init__(self, gateway: Gateway, namespace: str, name: str, token: Token) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self.name = name
        self.token = token

    def read(self) -> Build:
        """The build as it is now, if the token still holds (else Lost)."""
        try:
            build = self.gateway.get_build(self.namespace, self.name)
        except NotFound:
            raise Lost(f"build {self.namespace}/{self.name} was deleted") from None
        if not holds(self.token, build):
            raise Lost(
                f"build {self.namespace}/{self.name} is no longer attempt {self.token.attempt} on "
                f"{self.token.worker} (now: {build.status.phase}, attempt {build.status.attempt}, "
                f"worker {build.status.worker_name or 'none'})"
            )
        return build

    def write(self, change: Callable[[Build], BuildStatus | None]) -> Build:
        """Write change(build) on a fresh read; change returns None for nothing to write. Raises Lost,
        TransientError (API unavailable; the caller decides when to try again)."""
        for _ in range(MAX_CONFLICTS):
            build = self.read()
            status = change(build)
            if status is None:
                return build
            try:
                written = self.gateway.write_build_status(build, status)
            except Conflict as conflict:
                log.debug("Write to %s/%s conflicted, reading again: %s", self.namespace, self.name, conflict)
                continue
            if written.status.phase != build.status.phase:
                self._announce(written)
            return written
        raise TransientError(f"build {self.namespace}/{self.name} kept changing", reason="Conflict")

    def _announce(self, build: Build) -> None:
        """An Event for a phase change the user cares about (Running, Succeeded, Failed, handed back...),
        posted only by the writer that won. A courtesy: the status already says it."""
        failed = build.status.phase == BuildPhase.FAILED
        try:
            self.gateway.post_event(
                build,
                type_="Warning" if failed else "Normal",
                reason=build.status.reason or str(build.status.phase),
                action=str(build.status.phase),
                note=build.status.message,
            )
        except BuildfarmError as error:
            log.warning("Could not post an event for %s/%s: %s", self.namespace, self.name, error)

    def write_until_done(
        self, change: Callable[[Build], BuildStatus | None], *, give_up_after: float, pause: float = 2.0
    ) -> Build | None:
        """write(), retried after a pause while the API is unavailable, for up to give_up_after seconds.
        None if it was never written (logged): the operator's backstop deals with such a build."""
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                return self.write(change)
            except TransientError as error:
                if time.monotonic() >= deadline:
                    log.error("Gave up writing the status of %s/%s: %s", self.namespace, self.name, error)
                    return None
                log.warning("Could not write the status of %s/%s yet: %s", self.namespace, self.name, error)
                time.sleep(pause)
