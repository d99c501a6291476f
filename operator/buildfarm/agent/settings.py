"""The agent's settings: environment variables `BUILDFARM_AGENT_*`, overridden by command-line flags.

Validated once at start (see buildfarm.settings.validated): a bad value stops the agent with one line.
"""

import os
import platform
import re
import socket
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from buildfarm.agent.commands import TemplateError, check_template
from buildfarm.api.meta import LABEL_VALUE_MAX, Platform
from buildfarm.settings import NamespaceName, conflict, env_var, name_format, seconds_field

ENV_PREFIX: Final = "BUILDFARM_AGENT_"
DEFAULT_COMMAND: Final = (
    "eas build --local --non-interactive --platform {platform} --profile {profile} --output {artifact}"
)
DEFAULT_NAMESPACE: Final = "buildfarm-system"
# Variables of the agent's own environment a build may see by default: tool locations, no credentials.
DEFAULT_PASS_ENV: Final = ("ANDROID_HOME", "ANDROID_SDK_ROOT", "JAVA_HOME", "DEVELOPER_DIR")
_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY: Final = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def host_worker_name(hostname: str | None = None) -> str:
    """The host name made a Worker name: its first label, lowercased, other characters turned into '-'."""
    first = (hostname or socket.gethostname()).split(".")[0].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", first).strip("-")[:63].strip("-")
    return name or "worker"


WorkerName = Annotated[
    str,
    name_format(
        "worker_name",
        "a Worker name (lowercase letters, digits, '-' and '.', at most 253)",
        _DNS_SUBDOMAIN,
        253,
    ),
]


def _default_platforms() -> list[Platform]:
    return [Platform.IOS, Platform.ANDROID] if platform.system() == "Darwin" else [Platform.ANDROID]


class AgentSettings(BaseSettings):
    """Who the agent is, how it reaches Kubernetes, and how it runs builds.

    Each field `x` is read from the environment variable `BUILDFARM_AGENT_X` (case-insensitive; empty =
    unset). `platforms`, `capacity` and `labels` are used only when the agent creates its Worker: an
    existing Worker's spec belongs to the farm's administrators and is never changed by the agent.
    """

    WHO: ClassVar[str] = "the agent"

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # Identity and the cluster
    worker_name: WorkerName = Field(
        default_factory=host_worker_name,
        description="The Worker this agent is. Default: the host name, lowercased, up to its first dot.",
    )
    namespace: NamespaceName = Field(
        default=DEFAULT_NAMESPACE, description="The farm's namespace, where the agent's Lease lives."
    )
    kubeconfig: Path | None = Field(
        default=None, description="The kubeconfig file. Unset: $KUBECONFIG, else ~/.kube/config."
    )
    context: str | None = Field(
        default=None, min_length=1, max_length=253, description="The kubeconfig context; unset: current."
    )
    request_timeout: float = seconds_field(
        10.0, ge=0.5, le=300, description="The longest any single Kubernetes API call may take, in seconds."
    )
    connect_timeout: float = seconds_field(
        5.0, ge=0.1, le=60, description="The longest opening a connection may take, in seconds."
    )

    metrics_port: int = Field(
        default=9091,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at http://0.0.0.0:<port>/metrics; 0: no endpoint.",
    )

    # The Worker spec used when the agent creates its Worker
    platforms: Annotated[list[Platform], NoDecode] = Field(
        default_factory=_default_platforms,
        min_length=1,
        max_length=2,
        description="Platforms of a Worker the agent creates, comma-separated (ios, android). "
        "Default: ios,android on macOS, android elsewhere.",
    )
    capacity: int = Field(
        default=1, ge=1, le=64, description="Builds at once, for a Worker the agent creates."
    )
    labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Labels of a Worker the agent creates, as key=value pairs, comma-separated.",
    )

    # Timing
    lease_duration_seconds: int = seconds_field(
        40, ge=10, le=3600, description="How long the Lease holds without renewal (leaseDurationSeconds)."
    )
    renew_interval_seconds: float = seconds_field(
        10.0, ge=0.5, le=600, description="How often the Lease is renewed; well under its duration."
    )
    capabilities_interval_seconds: float = seconds_field(
        600.0, ge=5, le=86400, description="How often the machine's capabilities are reported again."
    )
    relist_seconds: float = seconds_field(
        30.0, ge=1, le=3600, description="How often the agent lists its builds again, beside the watch."
    )
    log_interval_seconds: float = seconds_field(
        5.0, ge=0.5, le=300, description="The least time between two writes of a build's log tail."
    )
    kill_grace_seconds: float = seconds_field(
        3.0, ge=0, le=60, description="Between SIGTERM and SIGKILL when a build is stopped."
    )
    stop_grace_seconds: float = seconds_field(
        600.0,
        ge=0,
        le=86400,
        description="On SIGTERM, how long running builds may still finish before they are handed back.",
    )
    max_build_seconds: int | None = Field(
        default=None,
        ge=1,
        le=86400,
        json_schema_extra={"unit": "seconds"},
        description="A ceiling on any build's run time on this machine, below spec.timeoutSeconds.",
    )

    # How builds run
    executor: Literal["shell", "tart"] = Field(
        default="shell", description="shell: on this machine; tart: in a throwaway Tart VM."
    )
    command: str = Field(
        default=DEFAULT_COMMAND,
        min_length=1,
        max_length=4096,
        description="The build command: split like a shell would, then each {placeholder} filled in "
        "inside its own argument. Placeholders: platform, profile, artifact, output_dir, source_dir, "
        "build_name, namespace, attempt.",
    )
    work_dir: Path = Field(
        default=Path("~/.buildfarm/agent"),
        description="Where builds run (workspaces/, deleted after each build), logs/ and artifacts/ stay.",
    )
    build_path: str = Field(
        default_factory=lambda: os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        min_length=1,
        description="PATH of a build. Default: the agent's own PATH.",
    )
    pass_env: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PASS_ENV),
        max_length=64,
        description="Names of the agent's environment variables a build sees too, comma-separated.",
    )
    lang: str = Field(default="en_US.UTF-8", max_length=64, description="LANG of a build.")
    max_archive_bytes: int = Field(
        default=4 * 1024**3, ge=1024, description="The largest source archive the agent downloads."
    )
    allow_file_sources: bool = Field(
        default=False,
        description="Accept file:// source URLs (git and archive). For tests only: a Build could read "
        "any file of the machine with it.",
    )

    # The tart executor
    tart_image: str | None = Field(
        default=None, min_length=1, max_length=512, description="The Tart image each build VM is cloned from."
    )
    tart_ssh_user: str = Field(
        default="admin", min_length=1, max_length=64, description="SSH user in the VM."
    )
    tart_ssh_key: Path | None = Field(default=None, description="SSH private key for the VM.")
    tart_boot_timeout_seconds: float = seconds_field(
        180.0, ge=1, le=3600, description="How long a VM may take to get an IP address."
    )

    @field_validator("platforms", "pass_env", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            parts = [part.strip() if isinstance(part, str) else part for part in value]
            return list(dict.fromkeys(part for part in parts if part != ""))
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        labels: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            key, sep, val = part.partition("=")
            if not sep:
                raise PydanticCustomError("label", "{part} is not key=value", {"part": repr(part)})
            labels[key.strip()] = val.strip()
        return labels

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not _LABEL_KEY.match(key) or len(val) > LABEL_VALUE_MAX or not _LABEL_VALUE.match(val):
                raise PydanticCustomError(
                    "label", "{label} is not a valid Kubernetes label", {"label": repr(f"{key}={val}")}
                )
        return value

    @field_validator("pass_env")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise PydanticCustomError("env_name", "{name} is not a variable name", {"name": repr(name)})
        return value

    @field_validator("command")
    @classmethod
    def _splits(cls, value: str) -> str:
        try:
            check_template(value)
        except TemplateError as error:
            raise PydanticCustomError("command", "{why}", {"why": str(error)}) from None
        except ValueError as error:
            raise PydanticCustomError(
                "command", "cannot be split into arguments ({why})", {"why": str(error)}
            ) from None
        return value

    @model_validator(mode="after")
    def _agree(self) -> Self:
        if self.renew_interval_seconds * 2 > self.lease_duration_seconds:
            raise conflict(
                f"{env_var('renew_interval_seconds', ENV_PREFIX)} ({self.renew_interval_seconds:g}) must be "
                f"at most half of {env_var('lease_duration_seconds', ENV_PREFIX)} "
                f"({self.lease_duration_seconds}), or one slow renewal lets the Lease lapse",
                "renew_interval_seconds",
                "lease_duration_seconds",
            )
        if self.connect_timeout > self.request_timeout:
            raise conflict(
                f"{env_var('connect_timeout', ENV_PREFIX)} ({self.connect_timeout:g}) must not exceed "
                f"{env_var('request_timeout', ENV_PREFIX)} ({self.request_timeout:g})",
                "connect_timeout",
                "request_timeout",
            )
        if self.executor == "tart" and not self.tart_image:
            raise conflict(
                f"{env_var('tart_image', ENV_PREFIX)} is required with the tart executor: name the image "
                "each build VM is cloned from (see `tart list`)",
                "tart_image",
                "executor",
            )
        return self

    @property
    def workspaces(self) -> Path:
        return self.work_dir.expanduser() / "workspaces"

    @property
    def logs(self) -> Path:
        return self.work_dir.expanduser() / "logs"

    @property
    def artifacts(self) -> Path:
        return self.work_dir.expanduser() / "artifacts"
