"""Reads that settle what the watch cache cannot: whether a build or a worker still exists.

The cache lags and may have missed a deletion (e.g. one made while no operator ran). A slot or an
assignment is never given up on the cache's silence; it is given up on an answer from the API server.
"""

from buildfarm.api.workers import Reservation
from buildfarm.errors import NotFound
from buildfarm.kube.gateway import Gateway
from buildfarm.operator.store import Store


class Evidence:
    def __init__(self, gateway: Gateway, store: Store) -> None:
        self.gateway = gateway
        self.store = store

    def confirm_build(self, reservation: Reservation) -> None:
        """Read the reservation's build into the store, or record it gone (404, or another uid)."""
        try:
            build = self.gateway.get_build(reservation.namespace, reservation.name)
        except NotFound:
            self.store.forget_build(reservation.namespace, reservation.name, reservation.uid)
            return
        if build.uid != reservation.uid:
            self.store.forget_build(reservation.namespace, reservation.name, reservation.uid)
        self.store.observe_build(build)

    def worker_gone(self, name: str) -> bool:
        """True if the API server says the worker does not exist; else the store learns it."""
        try:
            worker = self.gateway.get_worker(name)
        except NotFound:
            self.store.forget_worker(name)
            return True
        self.store.observe_worker(worker)
        return False
