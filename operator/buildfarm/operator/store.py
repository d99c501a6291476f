"""The operator's in-memory view of Builds and Workers, rebuilt from watch events (an informer cache).

It feeds the scheduler's snapshots and is never trusted over the API server: every decision taken from it
is checked by a conditional write. It is complete only once the operator's own initial LIST has been
merged (`synced`): the scheduler plans from nothing less. Watch events arrive on the event loop while
scheduling steps run in threads, so every access holds a lock.
"""

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from buildfarm.api.builds import Build
from buildfarm.api.meta import Resource
from buildfarm.api.workers import Worker
from buildfarm.domain.scheduling import Snapshot
from buildfarm.operator.compaction import cached, cached_build, compact, without_agent_fields
from buildfarm.telemetry import operator as metrics

BuildKey = tuple[str, str]
# How many deleted uids to remember; plenty for the time a slot release takes.
DELETED_REMEMBERED = 10_000


class Store:
    def __init__(self, namespaces: frozenset[str] | None = None) -> None:
        self.namespaces = namespaces
        self._lock = threading.Lock()
        self._builds: dict[BuildKey, Build] = {}
        self._workers: dict[str, Worker] = {}
        self._deleted: dict[str, None] = {}  # insertion-ordered set of uids, oldest first
        self._checked: set[str] = set()  # new builds whose credentials Secret was seen (see admission.py)
        self._synced = False
        # Counts every change to the cache, so the scheduler can tell whether a cycle's own writes (whose
        # watch echoes no longer wake it: see on_build_event) changed what the next cycle would plan from.
        self.changes = 0

    @property
    def synced(self) -> bool:
        return self._synced

    def on_build_event(self, event_type: str | None, body: dict[str, Any]) -> bool:
        """Apply a watch event; whether the cache changed. The echo of a copy the cache already has (the
        answer to the operator's own write, or the watch's initial list after the operator's LIST) is
        not parsed again and changes nothing."""
        metadata = body["metadata"]
        if event_type == "DELETED":
            with self._lock:
                self._builds.pop((metadata["namespace"], metadata["name"]), None)
                uid = str(metadata.get("uid", ""))
                self._checked.discard(uid)
                self._remember_deleted(uid)
                self.changes += 1
            return True
        with self._lock:
            if _already_has(self._builds.get((metadata.get("namespace"), metadata.get("name"))), metadata):
                return False
        return self.observe_build(Build.model_validate(without_agent_fields(compact(body))))

    def on_worker_event(self, event_type: str | None, body: dict[str, Any]) -> bool:
        metadata = body["metadata"]
        if event_type == "DELETED":
            with self._lock:
                self._workers.pop(metadata["name"], None)
                self._remember_deleted(str(metadata.get("uid", "")))
                self.changes += 1
            return True
        with self._lock:
            if _already_has(self._workers.get(metadata.get("name")), metadata):
                return False
        return self.observe_worker(Worker.model_validate(compact(body)))

    def observe_build(self, build: Build) -> bool:
        """Record a build as read from the API (a watch event, a LIST or GET, or the answer to a write);
        whether the cache changed."""
        with self._lock:
            key = (build.namespace, build.name)
            previous = self._builds.get(key)
            if build.uid in self._deleted or not _newer(previous, build):
                return False
            self._builds[key] = cached_build(build)
            self.changes += 1
            if build.status.phase is not None:
                self._checked.discard(build.uid)  # admitted: the check is no longer needed
            # Under the lock: each change is counted once, against the copy it replaced.
            metrics.build_changed(previous if previous and previous.uid == build.uid else None, build)
            return True

    def observe_worker(self, worker: Worker) -> bool:
        with self._lock:
            previous = self._workers.get(worker.name)
            if worker.uid in self._deleted or not _newer(previous, worker):
                return False
            self._workers[worker.name] = cached(worker)
            self.changes += 1
            metrics.worker_changed(previous if previous and previous.uid == worker.uid else None, worker)
            return True

    def merge_listing(self, builds: Iterable[Build], workers: Iterable[Worker]) -> tuple[int, int]:
        """Merge the operator's own initial LIST (iterated once, so it may come a page at a time); from
        then on the view is complete (see the docstring). How many builds and workers it had."""
        counts = [0, 0]
        for build in builds:
            self.observe_build(build)
            counts[0] += 1
        for worker in workers:
            self.observe_worker(worker)
            counts[1] += 1
        self._synced = True
        return counts[0], counts[1]

    def forget_build(self, namespace: str, name: str, uid: str) -> None:
        """A read found the build gone (404, or another uid under its name): its slots can go."""
        with self._lock:
            current = self._builds.get((namespace, name))
            if current is not None and current.uid == uid:
                del self._builds[(namespace, name)]
            elif uid in self._deleted:
                return  # known already: no change, so no new cycle for it
            self.changes += 1
            self._remember_deleted(uid)

    def credentials_checked(self, uid: str) -> None:
        """Admission found the new build's credentials Secret: it may be assigned."""
        with self._lock:
            if uid not in self._checked:
                self.changes += 1
                self._checked.add(uid)

    def forget_worker(self, name: str) -> None:
        """The API server said the worker is gone; stop planning on it until the watch shows it again."""
        with self._lock:
            if self._workers.pop(name, None) is not None:
                self.changes += 1

    def _remember_deleted(self, uid: str) -> None:
        self._deleted[uid] = None
        while len(self._deleted) > DELETED_REMEMBERED:
            del self._deleted[next(iter(self._deleted))]

    def snapshot(self, now: datetime) -> Snapshot:
        with self._lock:
            return Snapshot(
                builds=list(self._builds.values()),
                workers=list(self._workers.values()),
                now=now,
                namespaces=self.namespaces,
                deleted=frozenset(self._deleted),
                checked=frozenset(self._checked),
            )


def _already_has(current: Resource | None, metadata: dict[str, Any]) -> bool:
    """Whether the cached copy is the object `metadata` describes, at the same or a later version."""
    if current is None or current.uid != metadata.get("uid"):
        return False
    try:
        return int(metadata.get("resourceVersion", "")) <= int(current.resource_version)
    except ValueError:
        return False


def _newer(current: Resource | None, candidate: Resource) -> bool:
    """Whether `candidate` may replace `current`: a watch event, a LIST and the answer to a write can arrive
    out of order, and an older copy must not undo a newer one; the same version is the same content, no
    change. resourceVersions are etcd revisions in practice; where one is not a number, the later arrival
    wins, as before."""
    if current is None or current.uid != candidate.uid:
        return True
    try:
        return int(candidate.resource_version) > int(current.resource_version)
    except ValueError:
        return True
