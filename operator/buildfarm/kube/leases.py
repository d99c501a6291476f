"""Heartbeat Leases (coordination.k8s.io/v1): the only code that reads and writes them.

Times are MicroTime, written as RFC 3339 with exactly six fractional digits and `Z`
(`2026-01-02T03:04:05.000006Z`): the API server parses MicroTime with that layout and refuses a time
without its fraction, which is what Python's isoformat() gives at a whole second.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from buildfarm.kube.errors import classified

Timeout = tuple[float, float]
MERGE_PATCH = "application/merge-patch+json"


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Lease:
    name: str
    namespace: str
    holder: str  # "" when released
    duration_seconds: int | None
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int
    resource_version: str

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> "Lease":
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=spec.get("leaseDurationSeconds"),
            acquire_time=parse_time(spec.get("acquireTime")),
            renew_time=parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
        )


class Leases:
    """Read, create, renew and release Leases; writes are conditional on the resourceVersion read."""

    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout) -> None:
        self.timeout = timeout
        self._api = k8s.CoordinationV1Api(api_client)

    def get(self, namespace: str, name: str) -> Lease:
        with classified(f"read lease {namespace}/{name}"):
            response = self._api.read_namespaced_lease(
                name, namespace, _request_timeout=self.timeout, _preload_content=False
            )
        return Lease.from_api(_json(response))

    def create(self, namespace: str, name: str, holder: str, duration: int, now: datetime) -> Lease:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": 0,
            },
        }
        with classified(f"create lease {namespace}/{name}"):
            # A plain dict, so the MicroTime strings go out exactly as formatted above.
            response = self._api.create_namespaced_lease(
                namespace,
                body,  # type: ignore[arg-type]
                _request_timeout=self.timeout,
                _preload_content=False,
            )
        return Lease.from_api(_json(response))

    def renew(self, lease: Lease, holder: str, duration: int, now: datetime) -> Lease:
        """Renew as `holder`; taking over a released or foreign Lease sets acquireTime and counts a
        transition, as client-go's leader election does."""
        spec: dict[str, Any] = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "renewTime": micro_time(now),
        }
        if lease.holder != holder or lease.acquire_time is None:
            spec["acquireTime"] = micro_time(now)
            if lease.holder != holder:
                spec["leaseTransitions"] = lease.transitions + 1
        return self._patch(lease, spec, "renew")

    def release(self, lease: Lease) -> Lease:
        """Give the Lease up on a graceful stop: holderIdentity becomes "" (renewTime stays the last one)."""
        return self._patch(lease, {"holderIdentity": ""}, "release")

    def _patch(self, lease: Lease, spec: dict[str, Any], verb: str) -> Lease:
        body = {"metadata": {"resourceVersion": lease.resource_version}, "spec": spec}
        with classified(f"{verb} lease {lease.namespace}/{lease.name}"):
            response = self._api.patch_namespaced_lease(
                lease.name,
                lease.namespace,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
                _preload_content=False,
            )
        return Lease.from_api(_json(response))


def _json(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.data)
    finally:
        response.release_conn()
    if not isinstance(body, dict):
        raise ValueError("the API server sent a Lease that is not a JSON object")
    return body
