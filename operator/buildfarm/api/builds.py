"""The Build resource (namespaced, the analogue of a Pod): one app build on one worker."""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import Field

from buildfarm.api import formats
from buildfarm.api.meta import (
    CONDITIONS_FIELD,
    NAME_MAX,
    ApiModel,
    Condition,
    LabelSelector,
    Platform,
    Resource,
)

LOG_TAIL_MAX: Final = 16384


class BuildPhase(StrEnum):
    PENDING = "Pending"
    ASSIGNED = "Assigned"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


TERMINAL_PHASES: Final = frozenset({BuildPhase.SUCCEEDED, BuildPhase.FAILED, BuildPhase.CANCELLED})
ACTIVE_PHASES: Final = frozenset({BuildPhase.ASSIGNED, BuildPhase.RUNNING})

_P = BuildPhase

# The phase graph of docs/assignment-protocol.md, and its one source: the operator checks its own writes
# against it (domain/phases.py) and the API server enforces it for every writer (CEL rules generated
# below). None is a build without a phase yet. A new build may be assigned in one write; a retry after
# an infrastructure failure goes back to Pending, and a new attempt is then assigned.
PHASE_TRANSITIONS: Final[dict[BuildPhase | None, frozenset[BuildPhase]]] = {
    None: frozenset({_P.PENDING, _P.ASSIGNED, _P.FAILED, _P.CANCELLED}),
    _P.PENDING: frozenset({_P.ASSIGNED, _P.FAILED, _P.CANCELLED}),
    _P.ASSIGNED: frozenset({_P.RUNNING, _P.PENDING, _P.SUCCEEDED, _P.FAILED, _P.CANCELLED}),
    _P.RUNNING: frozenset({_P.PENDING, _P.SUCCEEDED, _P.FAILED, _P.CANCELLED}),
    _P.SUCCEEDED: frozenset(),
    _P.FAILED: frozenset(),
    _P.CANCELLED: frozenset(),
}

# Reasons the operator gives a build that waits; a final phase must say why it ended instead.
WAIT_REASONS: Final = (
    "Queued",
    "NoMatchingWorker",
    "WorkerNotReady",
    "WorkerBusy",
    "WorkerGone",
    "ApiUnavailable",
    "Forbidden",
)

# Status fields only the worker agent writes (they can be large: a log tail of up to 16 KiB, up to 64
# artifacts). The operator neither keeps them in its cache nor sends them in its status writes, which
# therefore leave them as they are.
AGENT_STATUS_FIELDS: Final = ("logTail", "artifacts")

# Fields a user may still change after creation; every other spec field is immutable.
MUTABLE_SPEC_FIELDS: Final = ("cancel", "ttlSecondsAfterFinished")


class ArchiveSource(ApiModel):
    """A project archive uploaded beforehand (e.g. by `buildfarm submit`)."""

    url: str = Field(
        description="Where the worker downloads the archive (a tar.gz of the project): an https:// URL, "
        "or http:// to the loopback address for local development.",
        min_length=1,
        max_length=2048,
        json_schema_extra=formats.validations(formats.ARCHIVE_URL.rule("spec.source.archive.url")),
    )
    sha256: str | None = Field(
        default=None,
        description="The archive's SHA-256 in hex; the worker refuses an archive that does not match.",
        max_length=64,
        pattern=r"^[a-f0-9]{64}$",
    )


class GitSource(ApiModel):
    """A git repository and revision to check out."""

    url: str = Field(
        description="The repository's clone URL: https://host/path, ssh://[user@]host[:port]/path or "
        "user@host:path.",
        min_length=1,
        max_length=2048,
        json_schema_extra=formats.validations(formats.GIT_URL.rule("spec.source.git.url")),
    )
    revision: str = Field(
        default="HEAD",
        description="A branch, tag, ref or commit SHA to build; HEAD by default.",
        min_length=1,
        max_length=255,
        json_schema_extra=formats.validations(formats.GIT_REVISION.rule("spec.source.git.revision")),
    )


class BuildSource(ApiModel):
    """Where the project comes from: exactly one of archive or git."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.archive) != has(self.git)",
                    "message": "source must set exactly one of archive or git",
                }
            ]
        }
    }

    archive: ArchiveSource | None = Field(default=None, description="An uploaded project archive.")
    git: GitSource | None = Field(default=None, description="A git repository and revision.")


class CredentialsRef(ApiModel):
    secret_name: str = Field(
        description="Name of a Secret in the Build's namespace holding the signing material.",
        min_length=1,
        max_length=NAME_MAX,
        json_schema_extra=formats.validations(formats.DNS_SUBDOMAIN.rule("spec.credentials.secretName")),
    )


class BuildSpec(ApiModel):
    """What to build and where it may run. Immutable after creation, except cancel and the TTL."""

    platform: Platform = Field(description="The target platform: ios (needs a macOS worker) or android.")
    profile: str | None = Field(
        default=None,
        description="The eas.json build profile to use, e.g. production; the project's default if unset.",
        min_length=1,
        max_length=128,
        json_schema_extra=formats.validations(formats.PROFILE.rule("spec.profile")),
    )
    source: BuildSource = Field(description="Where the project comes from: exactly one of archive or git.")
    credentials: CredentialsRef | None = Field(
        default=None, description="A reference to a Secret with signing credentials."
    )
    worker_selector: LabelSelector | None = Field(
        default=None,
        description="Labels a Worker must match to run this build, e.g. an Xcode version label.",
    )
    priority: int = Field(
        default=0, ge=-1000, le=1000, description="Higher runs first; builds of equal priority run FIFO."
    )
    timeout_seconds: int = Field(
        default=7200, ge=60, le=86400, description="The longest a build may run before it is failed."
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="How many times the build may be assigned when infrastructure fails (not the build).",
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel the build; it cannot be set back to false.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self || !oldSelf", "message": "spec.cancel cannot be set back to false"}
            ]
        },
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=2592000,
        description="Delete the build this long after it finished; kept forever if unset.",
    )


class Artifact(ApiModel):
    name: str = Field(description="The artifact's file name, e.g. app.ipa.", min_length=1, max_length=255)
    size: int = Field(ge=0, description="Size in bytes.")
    sha256: str = Field(
        description="SHA-256 of the content in hex.", max_length=64, pattern=r"^[a-f0-9]{64}$"
    )
    location: str = Field(description="Where to download the artifact.", min_length=1, max_length=2048)


class BuildStatus(ApiModel):
    """What the operator and the worker agent observed. Written through the status subresource."""

    phase: BuildPhase | None = Field(
        default=None,
        json_schema_extra={"maxLength": 16},
        description="Pending, Assigned, Running, Succeeded, Failed or Cancelled; the last three are final.",
    )
    worker_name: str = Field(
        default="",
        max_length=NAME_MAX,
        description="The Worker this attempt is assigned to; empty while pending.",
        json_schema_extra=formats.validations(formats.DNS_SUBDOMAIN.rule("status.workerName", optional=True)),
    )
    attempt: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Increases with each assignment; agents present it as a fencing token on every write.",
    )
    queued_at: datetime | None = Field(default=None, description="When the build entered the queue.")
    assigned_at: datetime | None = Field(default=None, description="When the current attempt was assigned.")
    started_at: datetime | None = Field(default=None, description="When the worker started the build.")
    finished_at: datetime | None = Field(default=None, description="When the build reached a final phase.")
    reason: str = Field(
        default="",
        max_length=128,
        description="A CamelCase word that says why the build is in its phase, e.g. NoMatchingWorker.",
        json_schema_extra=formats.validations(formats.CAMEL_CASE.rule("status.reason", optional=True)),
    )
    message: str = Field(default="", max_length=4096, description="A sentence for humans about the phase.")
    artifacts: list[Artifact] = Field(
        default_factory=list, max_length=64, description="Files the build produced."
    )
    log_tail: str = Field(
        default="", max_length=LOG_TAIL_MAX, description="The last lines of the build log (bounded)."
    )
    handbacks: int = Field(
        default=0,
        ge=0,
        le=100,
        description="How often the build was handed back unfinished (its agent stopped gracefully, or "
        "`buildfarm worker drain` requeued it); "
        "such an attempt is not spent: the operator subtracts handbacks from attempt when comparing it "
        "with spec.maxAttempts.",
    )
    conditions: list[Condition] = CONDITIONS_FIELD
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the operator last acted on."
    )


def _immutable_spec_rules() -> list[dict[str, str]]:
    """One transition rule per immutable spec field, pointing at the field so the error names it."""
    rules = []
    for name, field in BuildSpec.model_fields.items():
        key = field.alias or name
        if key in MUTABLE_SPEC_FIELDS:
            continue
        if field.is_required() or field.default is not None:
            rule = f"self.{key} == oldSelf.{key}"
        else:
            rule = (
                f"has(self.{key}) == has(oldSelf.{key}) && (!has(self.{key}) || self.{key} == oldSelf.{key})"
            )
        rules.append(
            {"rule": rule, "message": f"spec.{key} is immutable after creation", "fieldPath": f".{key}"}
        )
    return rules


def _ordered(phases: Iterable[BuildPhase]) -> list[str]:
    """Phase names in the order of the enum, so the generated CRD is the same on every run."""
    wanted = set(phases)
    return [p.value for p in BuildPhase if p in wanted]


def _cel_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _in_words(phases: Iterable[BuildPhase]) -> str:
    names = _ordered(phases)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


_FINAL = [p for p in BuildPhase if not PHASE_TRANSITIONS[p]]
_NEW_BUILD_PHASES: Final = _cel_list(_ordered(PHASE_TRANSITIONS[None]))
_NEW_BUILD_PHASES_MESSAGE: Final = (
    f"status.phase of a build without a phase can only be set to {_in_words(PHASE_TRANSITIONS[None])}"
)


def _phase_transition_rules() -> list[dict[str, Any]]:
    """The phase graph as CEL transition rules on status: one per phase, so each message is exact."""
    phase = {"reason": "FieldValueForbidden", "fieldPath": ".phase"}
    rules: list[dict[str, Any]] = [
        {
            # optionalOldSelf: also checked on the first status a new build is given (no old status).
            "rule": "(oldSelf.hasValue() && has(oldSelf.value().phase)) || !has(self.phase) "
            f"|| self.phase in {_NEW_BUILD_PHASES}",
            "optionalOldSelf": True,
            "message": _NEW_BUILD_PHASES_MESSAGE,
            **phase,
        },
        {
            "rule": f"!has(oldSelf.phase) || !(oldSelf.phase in {_cel_list(_ordered(_FINAL))}) "
            "|| (has(self.phase) && self.phase == oldSelf.phase)",
            "message": f"status.phase is final once {_in_words(_FINAL)}",
            **phase,
        },
    ]
    for source in BuildPhase:
        targets = PHASE_TRANSITIONS[source]
        if not targets:
            continue
        rules.append(
            {
                "rule": f"!has(oldSelf.phase) || oldSelf.phase != '{source.value}' "
                f"|| (has(self.phase) && self.phase in {_cel_list(_ordered({source, *targets}))})",
                "message": f"status.phase can go from {source.value} only to {_in_words(targets)}",
                **phase,
            }
        )
    return rules


# Rules the API server enforces on every write, whoever the writer is (operator, agent, kubectl).
# They sit on status, where every string is bounded, to stay far inside the CEL cost budget.
BUILD_STATUS_RULES: Final[list[dict[str, Any]]] = [
    *_phase_transition_rules(),
    {
        "rule": "self.attempt >= oldSelf.attempt",
        "message": "status.attempt cannot decrease",
        "reason": "FieldValueForbidden",
        "fieldPath": ".attempt",
    },
    {
        # optionalOldSelf: also checked on the first status a new build is given, where attempt was 0.
        "rule": "self.workerName == '' || (oldSelf.hasValue() && oldSelf.value().workerName != '') "
        "|| self.attempt > (oldSelf.hasValue() ? oldSelf.value().attempt : 0)",
        "optionalOldSelf": True,
        "message": "status.workerName can only be set together with an increase of status.attempt "
        "(each assignment is a new attempt)",
        "reason": "FieldValueForbidden",
        "fieldPath": ".workerName",
    },
    {
        "rule": "oldSelf.workerName == '' || self.workerName == '' || self.workerName == oldSelf.workerName "
        "|| self.attempt > oldSelf.attempt",
        "message": "status.workerName can only change together with an increase of status.attempt "
        "(the build is already assigned for this attempt)",
        "reason": "FieldValueForbidden",
        "fieldPath": ".workerName",
    },
    {
        "rule": "!has(self.phase) || !(self.phase in ['Assigned', 'Running']) || self.workerName != ''",
        "message": "status.workerName must be set while the build is Assigned or Running",
        "reason": "FieldValueRequired",
        "fieldPath": ".workerName",
    },
    {
        "rule": f"!has(self.phase) || !(self.phase in {_cel_list(_ordered(_FINAL))}) "
        f"|| !(self.reason in {_cel_list(WAIT_REASONS)})",
        "message": f"status.reason cannot stay a reason for waiting ({', '.join(WAIT_REASONS)}) once the "
        f"phase is {_in_words(_FINAL)}: give the reason it ended, or leave it empty",
        "reason": "FieldValueForbidden",
        "fieldPath": ".reason",
    },
]

# On the root, because no rule on status runs when the new object has no status at all. It is the only
# root rule and it reads no string, so it costs next to nothing.
BUILD_RULES: Final[list[dict[str, Any]]] = [
    {
        "rule": "has(self.status) || !has(oldSelf.status)",
        "message": "status cannot be removed once set",
        "reason": "FieldValueForbidden",
        "fieldPath": ".status",
    },
]


class Build(Resource):
    """A build of an Expo / React Native app for one platform."""

    kind: str = "Build"
    spec: BuildSpec
    status: BuildStatus = Field(default_factory=BuildStatus)


BUILD_SPEC_RULES: Final = _immutable_spec_rules()
