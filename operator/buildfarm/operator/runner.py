"""`buildfarm operator`: kopf's watch machinery and the scheduling loop in one event loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import kopf

from buildfarm.kube.client import request_timeout
from buildfarm.kube.gateway import Gateway
from buildfarm.operator import handlers
from buildfarm.operator.admission import Admissions
from buildfarm.operator.assignment import Assigner
from buildfarm.operator.health import HealthMonitor
from buildfarm.operator.outcomes import Reporter
from buildfarm.operator.scheduler import Scheduler
from buildfarm.operator.store import Store
from buildfarm.settings import OperatorSettings
from buildfarm.telemetry import operator as metrics

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # a type only: the gateway makes the calls


# Admissions in flight at once. Each is two short API calls; thousands at once (a backlog at start-up) only
# piled up connections and memory until kopf gave up on some of them.
ADMISSIONS_IN_FLIGHT = 8


def utcnow() -> datetime:
    return datetime.now(UTC)


def run(settings: OperatorSettings, api_client: ApiClient) -> None:
    asyncio.run(serve(settings, api_client))


async def serve(settings: OperatorSettings, api_client: ApiClient) -> None:
    namespaces = frozenset(settings.namespaces) or None
    gateway = Gateway(api_client, request_timeout(settings))
    store = Store(namespaces)
    # The level gauges come from the cache at each scrape; none until it is complete (see Store.synced).
    metrics.CACHE.watch(lambda: store.snapshot(utcnow()) if store.synced else None)
    reporter = Reporter(gateway, utcnow)
    admissions = Admissions(gateway, reporter, limit=ADMISSIONS_IN_FLIGHT, timeout=settings.handler_timeout)
    grace = timedelta(seconds=settings.lease_grace_seconds)
    startup_grace = settings.startup_grace_seconds
    health = HealthMonitor(
        store,
        gateway,
        utcnow,
        farm_namespace=settings.farm_namespace,
        grace=grace,
        startup_grace=grace if startup_grace is None else timedelta(seconds=startup_grace),
        call_timeout=settings.handler_timeout,
    )
    scheduler = Scheduler(
        store,
        gateway,
        Assigner(gateway, utcnow),
        reporter,
        admissions,
        utcnow,
        call_timeout=settings.handler_timeout,
        resync_seconds=settings.resync_seconds,
        backoff_seconds=settings.retry_backoff_seconds,
        requeue_delay=timedelta(seconds=settings.requeue_delay_seconds),
        deadline_grace=timedelta(seconds=settings.deadline_grace_seconds),
        in_startup_grace=health.in_startup_grace,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(
        registry,
        settings=settings,
        api_client=api_client,
        store=store,
        scheduler=scheduler,
        admissions=admissions,
        health=health,
    )
    await kopf.operator(
        registry=registry,
        standalone=settings.standalone,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
