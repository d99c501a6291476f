"""Thin kopf handlers: parse the body into a model, ask the domain, act through the gateway.

Errors are classified in one place (`_as_kopf`): transient ones become kopf.TemporaryError (kopf retries,
the build stays queued), permanent ones (the build already failed with a readable reason and an Event)
become kopf.PermanentError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import kopf

from buildfarm import constants as c
from buildfarm.api.builds import Build
from buildfarm.errors import BuildfarmError, Conflict, TransientError
from buildfarm.operator.admission import Admissions
from buildfarm.operator.config import configure_kopf, connection_info
from buildfarm.operator.health import HealthMonitor
from buildfarm.operator.scheduler import Scheduler
from buildfarm.operator.store import Store
from buildfarm.settings import OperatorSettings
from buildfarm.telemetry.logs import about

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # a type only: the gateway makes the calls

log = logging.getLogger(__name__)

CONFLICT_RETRY_DELAY = 0.5


def register(
    registry: kopf.OperatorRegistry,
    *,
    settings: OperatorSettings,
    api_client: ApiClient,
    store: Store,
    scheduler: Scheduler,
    admissions: Admissions,
    health: HealthMonitor,
) -> None:
    """Register every handler on `registry`, closed over the operator's collaborators."""
    on = kopf.on
    timeout = settings.handler_timeout
    backoff = settings.retry_backoff_seconds

    @on.startup(timeout=timeout, registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, operator_settings)

    operator_settings = settings
    loop_task: list[asyncio.Task[None]] = []

    @on.startup(timeout=timeout, registry=registry)
    async def start_scheduler(**_: Any) -> None:
        loop_task.append(asyncio.create_task(scheduler.run(), name="buildfarm-scheduler"))
        loop_task.append(asyncio.create_task(health.run(), name="buildfarm-health"))

    @on.cleanup(timeout=timeout, registry=registry)
    async def stop_scheduler(**_: Any) -> None:
        # Stopped here, not after kopf returns: kopf waits for stray tasks before it exits.
        for task in loop_task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        admissions.close()

    @on.login(timeout=timeout, registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api_client)

    # Watch-event handlers only update memory and wake the scheduler: no I/O, nothing to time out
    # (kopf's on.event takes no timeout); the scheduler bounds each of its steps.
    @on.event(c.GROUP, c.VERSION, c.BUILD_PLURAL, id="watch-builds", registry=registry)
    async def build_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        namespace, name = body.metadata.namespace, body.metadata.name
        log.debug(
            "Build event %s for %s/%s", type, namespace, name, extra=about(namespace=namespace, name=name)
        )
        if store.on_build_event(type, dict(body)):
            scheduler.kick()

    @on.event(c.GROUP, c.VERSION, c.WORKER_PLURAL, id="watch-workers", registry=registry)
    async def worker_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        log.debug("Worker event %s for %s", type, body.metadata.name, extra=about(worker=body.metadata.name))
        if store.on_worker_event(type, dict(body)):
            scheduler.kick()

    # No kopf `timeout=` here: kopf would stop retrying after it and the build would never be queued.
    # Each invocation is bounded instead, and transient failures are retried for as long as they last;
    # should kopf still give up on a build, the scheduler's periodic pass admits it (see admission.py).
    @on.resume(c.GROUP, c.VERSION, c.BUILD_PLURAL, when=_not_admitted, id="admit", registry=registry)
    @on.create(c.GROUP, c.VERSION, c.BUILD_PLURAL, when=_not_admitted, id="admit", registry=registry)
    async def admit(body: kopf.Body, **_: Any) -> None:
        """Check what no retry could fix for a new build (its credentials Secret exists); the scheduler
        then assigns it, or writes it Pending with its reason. Nothing is written when the check passes."""
        build = Build.model_validate(dict(body))
        with _as_kopf(backoff):
            checked = await admissions.admit(build)
        if checked:
            store.credentials_checked(build.uid)
            scheduler.kick()


def _not_admitted(status: kopf.Status, spec: kopf.Spec, **_: Any) -> bool:
    """A new build that names a credentials Secret: one that names none needs no admission."""
    return not status.get("phase") and bool(spec.get("credentials"))


@contextmanager
def _as_kopf(backoff: float) -> Iterator[None]:
    """The one place where buildfarm's error classes become kopf's. A permanent error has already
    failed the build with its reason (see admission.py)."""
    try:
        yield
    except Conflict as exc:
        raise kopf.TemporaryError(exc.message, delay=CONFLICT_RETRY_DELAY) from exc
    except TransientError as exc:
        raise kopf.TemporaryError(exc.message, delay=backoff) from exc
    except BuildfarmError as exc:
        raise kopf.PermanentError(exc.message) from exc
