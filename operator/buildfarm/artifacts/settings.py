"""The artifact service's settings: environment variables `BUILDFARM_ARTIFACTS_*`, overridden by flags.

Validated once at start (buildfarm.settings.validated): a bad value stops `buildfarm artifacts serve` with
one line naming the variable (or flag) and what it must be.
"""

from pathlib import Path
from typing import ClassVar, Final, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from buildfarm.settings import NamespaceName, conflict, env_var, seconds_field

ENV_PREFIX: Final = "BUILDFARM_ARTIFACTS_"
GB: Final = 1024**3
MB: Final = 1024**2


def _env(field: str) -> str:
    return env_var(field, ENV_PREFIX)


class ArtifactSettings(BaseSettings):
    """Where the service listens, where it stores, how much it takes, and how it reaches Kubernetes.

    Each field `x` is read from `BUILDFARM_ARTIFACTS_X` (case-insensitive; empty = unset).
    """

    WHO: ClassVar[str] = "the artifact service"

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # Storage
    backend: Literal["filesystem", "s3"] = Field(
        default="filesystem", description="Where files are stored: filesystem (a volume) or s3."
    )
    root: Path | None = Field(
        default=None, description="The filesystem backend's directory (a PersistentVolume's mount)."
    )
    bucket: str | None = Field(
        default=None,
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$",
        description="The s3 backend's bucket.",
    )
    source_limit_bytes: int = Field(
        default=2 * GB, ge=1, le=1024 * GB, description="The largest source archive accepted, in bytes."
    )
    artifact_limit_bytes: int = Field(
        default=4 * GB, ge=1, le=1024 * GB, description="The largest artifact accepted, in bytes."
    )
    log_limit_bytes: int = Field(
        default=100 * MB, ge=1, le=64 * GB, description="The largest build log kept, in bytes."
    )
    presign_seconds: int = seconds_field(
        300, ge=10, le=3600, description="How long a presigned download URL (s3) stays valid, in seconds."
    )

    # Serving
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=253,
        description="The address to listen on (0.0.0.0: every interface, as in a pod).",
    )
    port: int = Field(default=8443, ge=0, le=65535, description="The port to listen on (0: any free one).")
    base_url: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^https?://[^/\s?#]+(/[^\s?#]*)?$",
        description="The service's URL as clients reach it, used in the URLs it hands out. "
        "Unset: taken from each request's Host.",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="The serving certificate (PEM). Unset: plain HTTP (loopback and tests)."
    )
    tls_key_file: Path | None = Field(default=None, description="The serving certificate's private key.")
    metrics_port: int = Field(
        default=9092,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at http://0.0.0.0:<port>/metrics; 0: no endpoint.",
    )

    # Kubernetes
    farm_namespace: NamespaceName = Field(
        default="buildfarm-system", description="The farm's namespace, where agent ServiceAccounts live."
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="The kubeconfig file. Unset: $KUBECONFIG, the pod's service account, ~/.kube/config.",
    )
    context: str | None = Field(default=None, min_length=1, max_length=253, description="The context.")
    request_timeout: float = seconds_field(
        10.0, ge=0.5, le=300, description="The longest any single Kubernetes API call may take, in seconds."
    )
    connect_timeout: float = seconds_field(
        5.0, ge=0.1, le=60, description="The longest opening a connection may take, in seconds."
    )
    token_cache_seconds: float = seconds_field(
        10.0, ge=0, le=300, description="How long a TokenReview's answer is reused, in seconds (0: never)."
    )
    token_cache_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="How many TokenReview answers are kept at most."
    )
    sweep_interval_seconds: float = seconds_field(
        300.0, ge=5, le=86400, description="How often files of deleted Builds are removed, in seconds."
    )
    follow_poll_seconds: float = seconds_field(
        1.0, ge=0.05, le=60, description="How often a followed log is checked for new bytes, in seconds."
    )

    @model_validator(mode="after")
    def _storage_is_complete(self) -> Self:
        if self.backend == "filesystem" and self.root is None:
            raise conflict(
                f"{_env('backend')}=filesystem needs {_env('root')}: set it to the storage directory",
                "backend",
                "root",
            )
        if self.backend == "filesystem" and self.root is not None and not self.root.is_dir():
            raise conflict(
                f"{_env('root')} ({self.root}) is not a directory: create it or mount the volume there",
                "root",
            )
        if self.backend == "s3" and self.bucket is None:
            raise conflict(
                f"{_env('backend')}=s3 needs {_env('bucket')}: name the bucket", "backend", "bucket"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise conflict(
                f"{_env('tls_cert_file')} and {_env('tls_key_file')} go together: set both or neither",
                "tls_cert_file",
                "tls_key_file",
            )
        for field in ("tls_cert_file", "tls_key_file"):
            path = getattr(self, field)
            if path is not None and not path.is_file():
                raise conflict(f"{_env(field)} ({path}) is not a readable file: fix the path", field)
        if self.connect_timeout > self.request_timeout:
            raise conflict(
                f"{_env('connect_timeout')} ({self.connect_timeout:g}) must not exceed "
                f"{_env('request_timeout')} ({self.request_timeout:g})",
                "connect_timeout",
                "request_timeout",
            )
        return self
