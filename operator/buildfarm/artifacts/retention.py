"""Retention: the files of a Build go when the Build goes, and a source when no Build uses it any more
(docs/artifacts.md, "Retention").

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

from buildfarm.api.builds import Build
from buildfarm.artifacts import keys
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


class Sweeper:
    """Deletes the files of Builds that no longer exist, and sources no Build uses.

    A source is uploaded before its Build is created, so an unused source is deleted only when it was
    unused at the previous sweep too: the CLI creates the Build right after the upload, far within
    one sweep interval.
    """

    def __init__(self, backend: Backend, gateway: ArtifactsGateway) -> None:
        self.backend = backend
        self.gateway = gateway
        self._unused_sources: set[str] = set()

    async def sweep(self) -> int:
        """One pass; returns how many objects went."""
        builds_stored = await stored_builds(self.backend)
        sources_stored = await stored_sources(self.backend)
        builds = await asyncio.to_thread(self.gateway.list_builds)  # after storage: see the module doc
        live = {f"builds/{b.namespace}/{b.name}/{b.uid}/" for b in builds}
        used = {prefix for b in builds if (prefix := _source_of(b)) is not None}
        unused = {prefix for prefix in sources_stored if prefix not in used}
        doomed = [p for p in builds_stored if p not in live] + sorted(unused & self._unused_sources)
        self._unused_sources = unused
        deleted = 0
        for prefix in doomed:
            try:
                count = await self.backend.delete_prefix(prefix)
            except StorageError as error:
                logger.warning("Could not delete %s (retried next sweep): %s", prefix, error)
                continue
            logger.info("Deleted %d files of %s, which no Build uses any more", count, prefix.rstrip("/"))
            deleted += count
        sweep_temporary = getattr(self.backend, "sweep_temporary", None)  # backends with temporary files
        if sweep_temporary is not None:
            deleted += await sweep_temporary(TEMPORARY_MAX_AGE_SECONDS, time.time())
        return deleted

    async def forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except (BuildfarmError, StorageError) as error:
                logger.warning("The retention sweep failed (retried in %gs): %s", interval, error)
            await asyncio.sleep(interval)


async def stored_sources(backend: Backend) -> list[str]:
    """Every `sources/{ns}/{sha256}/` prefix in storage."""
    found = []
    async for ns in backend.list_prefixes("sources/"):
        async for source in backend.list_prefixes(ns):
            found.append(source)
    return found


def _source_of(build: Build) -> str | None:
    """The storage prefix of the source the Build's spec names, if it is one of this service's."""
    archive = build.spec.source.archive
    if archive is None:
        return None
    path = archive.url.split("?", 1)[0]
    marker = f"/v1/namespaces/{build.namespace}/sources/"
    if marker not in path:
        return None
    try:
        return keys.source_prefix(build.namespace, path.rsplit(marker, 1)[1])
    except keys.BadName:
        return None
