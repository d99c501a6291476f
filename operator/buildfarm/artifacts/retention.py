"""Retention: the files of a Build go when the Build goes (docs/artifacts.md, "Retention").

The choice: a periodic sweep by uid, not a finalizer. Storage is keyed `builds/{ns}/{name}/{uid}/`, and
every prefix whose (namespace, name, uid) is no longer a Build is deleted. So deleting a Build, by hand or
through ttlSecondsAfterFinished, is never held up (no finalizer can block a namespace deletion while
storage is down, and the Build hot path gets no extra write), and a failed delete is simply retried on the
next sweep. Files of a deleted Build are unreachable at once anyway: every read first finds the Build
and its uid.

Order matters: storage is listed before the Builds are. A prefix seen in storage was written while its
Build existed (the service checks that first), so if the Build is absent from the later list it is gone;
a Build created after the storage listing cannot lose files it had no prefix for yet.
"""

import asyncio
import logging
import time

from buildfarm.artifacts.backends.base import Backend, StorageError
from buildfarm.errors import BuildfarmError
from buildfarm.kube.artifacts_gateway import ArtifactsGateway

logger = logging.getLogger(__name__)

TEMPORARY_MAX_AGE_SECONDS = 24 * 3600  # a temporary file this old belongs to no upload in flight


async def stored_builds(backend: Backend) -> list[str]:
    """Every `builds/{ns}/{name}/{uid}/` prefix in storage."""
    found = []
    async for ns in backend.list_prefixes("builds/"):
        async for name in backend.list_prefixes(ns):
            async for uid in backend.list_prefixes(name):
                found.append(uid)
    return found


async def sweep(backend: Backend, gateway: ArtifactsGateway) -> int:
    """Delete the files of Builds that no longer exist; returns how many objects went."""
    prefixes = await stored_builds(backend)
    builds = await asyncio.to_thread(gateway.list_builds)
    live = {f"builds/{b.namespace}/{b.name}/{b.uid}/" for b in builds}
    deleted = 0
    for prefix in prefixes:
        if prefix in live:
            continue
        try:
            count = await backend.delete_prefix(prefix)
        except StorageError as error:
            logger.warning("Could not delete %s of a deleted build (retried next sweep): %s", prefix, error)
            continue
        logger.info("Deleted %d files of deleted build %s", count, prefix.rstrip("/"))
        deleted += count
    sweep_temporary = getattr(backend, "sweep_temporary", None)  # backends with temporary files of their own
    if sweep_temporary is not None:
        deleted += await sweep_temporary(TEMPORARY_MAX_AGE_SECONDS, time.time())
    return deleted


async def sweep_forever(backend: Backend, gateway: ArtifactsGateway, interval: float) -> None:
    while True:
        try:
            await sweep(backend, gateway)
        except (BuildfarmError, StorageError) as error:
            logger.warning("The retention sweep failed (retried in %gs): %s", interval, error)
        await asyncio.sleep(interval)
