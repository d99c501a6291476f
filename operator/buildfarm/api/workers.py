"""The Worker resource (cluster-scoped, the analogue of a Node): one build machine and its agent."""

from datetime import datetime
from typing import Annotated, Final

from pydantic import Field

from buildfarm.api import formats
from buildfarm.api.meta import (
    CONDITIONS_FIELD,
    NAME_MAX,
    ApiModel,
    Condition,
    ConditionStatus,
    Platform,
    Resource,
)

READY: Final = "Ready"


class WorkerSpec(ApiModel):
    """What the machine offers to the scheduler; selection labels are plain metadata labels."""

    platforms: list[Platform] = Field(
        min_length=1,
        max_length=2,
        description="Platforms this worker builds: ios needs macOS with Xcode; android needs the SDK.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    capacity: int = Field(default=1, ge=1, le=64, description="How many builds may run here at once.")
    unschedulable: bool = Field(
        default=False, description="Cordon: when true, no new build is assigned here; running ones finish."
    )


class WorkerCapabilities(ApiModel):
    """What the agent found on the machine, reported at registration and kept current."""

    os_version: str = Field(default="", max_length=128, description="Operating system and version.")
    architecture: str = Field(default="", max_length=32, description="CPU architecture, e.g. arm64.")
    xcode_versions: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=16, description="Installed Xcode versions, e.g. 16.2."
    )
    cpu_cores: int | None = Field(default=None, ge=0, description="Number of CPU cores.")
    memory_bytes: int | None = Field(default=None, ge=0, description="Physical memory in bytes.")
    free_disk_bytes: int | None = Field(default=None, ge=0, description="Free disk space in bytes.")
    agent_version: str = Field(default="", max_length=64, description="Version of the buildfarm agent.")


# Worker names are checked with OpenAPI patterns, not CEL: a CRD without any CEL rule is spared the API
# server's "<nil>: ... some validation rules were not checked" line under every enum, required or
# too-long error.
class Reservation(ApiModel):
    """A slot of this worker held for one attempt of one build (see docs/assignment-protocol.md)."""

    namespace: str = Field(
        description="Namespace of the build.",
        max_length=63,
        json_schema_extra={"pattern": formats.DNS_LABEL.regex},
    )
    name: str = Field(
        description="Name of the build.",
        max_length=NAME_MAX,
        json_schema_extra={"pattern": formats.DNS_SUBDOMAIN.regex},
    )
    uid: str = Field(
        max_length=64, description="UID of the build, so a re-created build of the same name is not confused."
    )
    attempt: int = Field(ge=1, le=100, description="The attempt number the slot is held for.")
    reserved_at: datetime = Field(description="When the slot was reserved.")

    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.name, self.uid)


class WorkerStatus(ApiModel):
    """What the agent and the operator observed. Heartbeats live in a Lease, not here."""

    conditions: list[Condition] = CONDITIONS_FIELD
    capabilities: WorkerCapabilities = Field(
        default_factory=WorkerCapabilities, description="What the agent reports about the machine."
    )
    reservations: list[Reservation] = Field(
        default_factory=list,
        max_length=64,
        description="Slots held by the operator, one per build attempt assigned or being assigned here. "
        "Written only with resourceVersion preconditions; this is the lock that keeps two operators from "
        "filling the same free slot.",
    )
    active_builds: int = Field(default=0, ge=0, description="Builds assigned here that are not finished.")
    builds_succeeded: int = Field(default=0, ge=0, description="Builds that succeeded here, in total.")
    builds_failed: int = Field(default=0, ge=0, description="Builds that failed here, in total.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation last acted on."
    )


class Worker(Resource):
    """A build machine (usually a Mac) that runs an agent outside the cluster."""

    kind: str = "Worker"
    spec: WorkerSpec
    status: WorkerStatus = Field(default_factory=WorkerStatus)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.status.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        cond = self.condition(READY)
        return cond is not None and cond.status == ConditionStatus.TRUE
