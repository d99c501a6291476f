"""The operator's in-memory view of Builds and Workers, rebuilt from watch events (an informer cache).

It feeds the scheduler's snapshots and is never trusted over the API server: every decision taken from it
is checked by a conditional write. Watch events arrive on the event loop while scheduling steps run in
threads, so every access holds a lock.
"""

import threading
from datetime import datetime
from typing import Any

from buildfarm.api.builds import Build
from buildfarm.api.workers import Worker
from buildfarm.domain.scheduling import Snapshot

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

    def on_build_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        if event_type == "DELETED":
            with self._lock:
                self._builds.pop((body["metadata"]["namespace"], body["metadata"]["name"]), None)
                self._remember_deleted(body)
        else:
            self.observe_build(Build.model_validate(body))

    def on_worker_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        if event_type == "DELETED":
            with self._lock:
                self._workers.pop(body["metadata"]["name"], None)
                self._remember_deleted(body)
        else:
            self.observe_worker(Worker.model_validate(body))

    def observe_build(self, build: Build) -> None:
        """Record a build as read from the API (a watch event, or the answer to our own write)."""
        with self._lock:
            if build.uid not in self._deleted:  # a late answer must not bring a deleted build back
                self._builds[(build.namespace, build.name)] = build

    def observe_worker(self, worker: Worker) -> None:
        with self._lock:
            if worker.uid not in self._deleted:
                self._workers[worker.name] = worker

    def forget_worker(self, name: str) -> None:
        """The API server said the worker is gone; stop planning on it until the watch shows it again."""
        with self._lock:
            self._workers.pop(name, None)

    def _remember_deleted(self, body: dict[str, Any]) -> None:
        self._deleted[str(body["metadata"].get("uid", ""))] = None
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
            )
