"""Turns OperatorSettings into kopf's settings, logging and credentials.

Used by the runner, typically from a `@kopf.on.startup()` handler (`configure_kopf`) and a
`@kopf.on.login()` handler (`connection_info`), so kopf uses the same cluster, credentials and timeouts
as the preflight checks did.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Final

import kopf

from buildfarm import constants as c
from buildfarm.kube.gateway import PAGE_SIZE
from buildfarm.settings import PEERING_PRIORITY_MAX, OperatorSettings
from buildfarm.telemetry import logs

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # a type only: the gateway makes the calls

# Retries of failed API calls inside kopf (seconds): short, bounded, and about a minute in total.
API_ERROR_BACKOFFS: Final = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)
# How long kopf keeps an object's task after its last event (see configure_kopf); kopf's default is 5 s.
OBJECT_WORKER_IDLE_SECONDS: Final = 0.5
# Pauses before a crashed watch-stream worker is restarted (seconds); kopf's default goes up to 10 minutes.
QUEUE_ERROR_DELAYS: Final = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0)


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Applies the timeouts, peering mode and bookkeeping storage of `settings` to kopf's settings.

    Kopf has no global handler timeout: handlers pass `timeout=settings.handler_timeout` themselves.
    """
    networking = kopf_settings.networking
    networking.request_timeout = settings.request_timeout
    networking.connect_timeout = settings.connect_timeout
    networking.error_backoffs = API_ERROR_BACKOFFS

    watching = kopf_settings.watching
    watching.server_timeout = settings.watch_server_timeout
    watching.client_timeout = settings.watch_client_timeout
    watching.connect_timeout = settings.connect_timeout
    # kopf's initial LIST in pages, as the gateway's: one response of every object of a large farm was the
    # operator's largest allocation at start, and Python keeps much of such a peak as RSS.
    watching.chunk_size = PAGE_SIZE

    kopf_settings.peering.standalone = settings.standalone
    kopf_settings.peering.name = settings.peering_name
    kopf_settings.peering.priority = settings.peering_priority or secrets.randbelow(PEERING_PRIORITY_MAX) + 1
    kopf_settings.peering.lifetime = settings.peering_lifetime_seconds
    # The operator posts its own Events, through the gateway, for what a user should see; kopf posts none
    # (its log lines would become Events only with posting.loggers, which stays off).
    kopf_settings.posting.enabled = False

    # Errors that are not kopf's own (TemporaryError carries its delay) are retried after this pause.
    kopf_settings.execution.default_backoff = settings.retry_backoff_seconds
    kopf_settings.queueing.error_delays = QUEUE_ERROR_DELAYS

    # Kopf writes no bookkeeping on a Build that its handler admitted at the first try: each such write
    # cost an API call per build and changed the resourceVersion under the scheduler's binding write (a
    # 409 for nearly every build). The admission handler needs no diff base (it is idempotent and runs
    # only while a build has no phase), and progress is stored, as annotations under our own group
    # (not in status, which our CRDs define strictly), only when a handler must be retried.
    persistence = kopf_settings.persistence
    persistence.progress_storage = RetriesOnlyProgressStorage(prefix=c.GROUP)
    persistence.diffbase_storage = NoDiffBaseStorage()
    persistence.finalizer = f"{c.GROUP}/operator"

    # kopf keeps a task per object for this long after the object's last event. Its default (5 s) kept one
    # for every object of a large farm alive at once after the initial LIST, and Python kept much of that
    # peak as RSS; the handlers here are quick and a new task per burst of events is cheap.
    kopf_settings.queueing.idle_timeout = OBJECT_WORKER_IDLE_SECONDS

    # Shut down promptly on SIGTERM: nothing here needs kopf's long grace periods.
    kopf_settings.queueing.exit_timeout = 1.0
    kopf_settings.background.instant_exit_timeout = 0.1


class RetriesOnlyProgressStorage(kopf.AnnotationsProgressStorage):
    """Kopf's annotation storage, minus the write for a handler that finished at its first try.

    Kopf stores a handler's record and, in the same patch, purges it once all handlers are done; only the
    marker annotation then remained, which was still one PATCH per object. A finished record with no
    earlier record on the object is therefore not stored at all; retries (a TemporaryError) are stored and
    purged as before, so kopf's retry counting and delays work unchanged.
    """

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        finished = bool(record.get("success") or record.get("failure"))
        if finished and self.fetch(key=key, body=body) is None:
            return
        super().store(key=key, record=record, body=body, patch=patch)


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Remembers no last-handled configuration: every event of an object is a creation to kopf, which is
    what the operator's only change handler (admission, filtered to builds without a phase) wants. The
    annotation it replaces was one write per build and changed its resourceVersion."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure_logging(*, verbose: bool, log_format: str = "text") -> None:
    """Kopf's log format on stderr (or one JSON object per line: see telemetry/logs.py): INFO by default,
    DEBUG with --verbose. At INFO the operator says one line per decision (queued, assigned, waiting
    reason changed, requeued); kopf's own per-handler bookkeeping lines, one per watch event, are moved
    to DEBUG."""
    kopf.configure(verbose=verbose)
    for handler in logging.getLogger().handlers:
        logs.install(handler, log_format)
    objects = logging.getLogger(KOPF_OBJECTS_LOGGER)
    if not any(isinstance(f, KopfBookkeepingToDebug) for f in objects.filters):
        objects.addFilter(KopfBookkeepingToDebug())


KOPF_OBJECTS_LOGGER: Final = "kopf.objects"


class KopfBookkeepingToDebug(logging.Filter):
    """Demotes kopf's "Handler 'x' succeeded." and "... is processed: ..." lines to DEBUG: for watch
    handlers they come once per watch event, and the operator logs the decision itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        message = record.getMessage()
        if not (message.endswith(" succeeded.") or " is processed: " in message):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(KOPF_OBJECTS_LOGGER).isEnabledFor(logging.DEBUG)


def connection_info(api_client: ApiClient) -> kopf.ConnectionInfo:
    """The cluster and credentials of `api_client` in kopf's terms, for a `@kopf.on.login()` handler.

    Kopf's own login would read the default kubeconfig, ignoring --kubeconfig and --context.
    """
    config = api_client.configuration
    # kubernetes>=36 keeps a bearer token under BearerToken, older versions under authorization.
    header: str | None = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    scheme: str | None = None
    token: str | None = None
    if header:
        parts = header.split(" ", 1)
        scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )
