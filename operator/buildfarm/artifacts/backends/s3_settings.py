"""Settings of the S3 storage backend: environment variables `BUILDFARM_ARTIFACTS_S3_*`.

Load them with `buildfarm.settings.validated(S3Settings)`, which turns every problem into one line that
names the variable. The credentials are meant to come from a Secret (`envFrom` / `secretKeyRef`); they are
SecretStr, so they never show in a repr, a log line or an error message.
"""

import re
from typing import Annotated, ClassVar, Final

from pydantic import AfterValidator, AnyHttpUrl, Field, SecretStr
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from buildfarm.settings import seconds_field

S3_ENV_PREFIX: Final = "BUILDFARM_ARTIFACTS_S3_"
# S3's bucket naming rules (the part every S3-compatible server shares): 3-63 characters of lowercase
# letters, digits, '.' and '-', starting and ending with a letter or digit.
_BUCKET_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A key prefix: segments of safe characters each ending with "/", so keys stay under one "directory".
_PREFIX_PATTERN: Final = re.compile(r"^([A-Za-z0-9._-]+/)*$")


def _bucket_name(value: str) -> str:
    if not _BUCKET_PATTERN.match(value) or ".." in value:
        raise PydanticCustomError(
            "bucket_name",
            "{name} is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')",
            {"name": repr(value)},
        )
    return value


def _endpoint(value: AnyHttpUrl) -> AnyHttpUrl:
    # Path-style addressing appends /bucket/key to the endpoint, so it must be a bare origin.
    if value.path not in (None, "", "/") or value.query or value.fragment:
        raise PydanticCustomError(
            "endpoint_url",
            "{url} must be a bare http(s)://host[:port] URL, without a path or query",
            {"url": repr(str(value))},
        )
    return value


def _key_prefix(value: str) -> str:
    if not _PREFIX_PATTERN.match(value):
        raise PydanticCustomError(
            "key_prefix",
            "{prefix} must be empty or path segments each ending with '/' (e.g. 'buildfarm/')",
            {"prefix": repr(value)},
        )
    return value


BucketName = Annotated[str, AfterValidator(_bucket_name)]
Endpoint = Annotated[AnyHttpUrl, AfterValidator(_endpoint)]
KeyPrefix = Annotated[str, AfterValidator(_key_prefix)]


class S3Settings(BaseSettings):
    """Where the S3 backend stores objects and how it reaches the store.

    Each field `x` is read from `BUILDFARM_ARTIFACTS_S3_X` (case-insensitive; empty = unset).
    """

    WHO: ClassVar[str] = "the artifact service's S3 backend"

    model_config = SettingsConfigDict(
        env_prefix=S3_ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    endpoint: Endpoint = Field(
        default=AnyHttpUrl("https://s3.amazonaws.com"),
        description="The S3 API's URL as the service reaches it, e.g. http://minio.storage:9000; "
        "https://s3.<region>.amazonaws.com for AWS.",
    )
    public_endpoint: Endpoint | None = Field(
        default=None,
        description="The URL that presigned download links point at, when clients reach the store by "
        "another address than the service does (e.g. an Ingress). Unset: endpoint.",
    )
    bucket: BucketName = Field(description="The bucket that holds every object; it must exist.")
    region: str = Field(
        default="us-east-1",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9-]+$",
        description="The bucket's region, used for request signatures (any value for most "
        "S3-compatible servers).",
    )
    prefix: KeyPrefix = Field(
        default="",
        description="A key prefix inside the bucket for everything buildfarm stores, e.g. 'buildfarm/'.",
    )
    access_key_id: SecretStr = Field(min_length=1, description="The access key id (from a Secret).")
    secret_access_key: SecretStr = Field(min_length=1, description="The secret access key (from a Secret).")
    session_token: SecretStr | None = Field(
        default=None, description="A session token, for temporary credentials only."
    )
    path_style: bool = Field(
        default=True,
        description="Address the bucket in the path (http://host/bucket/key), as most S3-compatible "
        "servers need; false: virtual-hosted style (http://bucket.host/key), as AWS prefers.",
    )
    verify_tls: bool = Field(
        default=True, description="Verify the endpoint's TLS certificate (https endpoints only)."
    )
    connect_timeout: float = seconds_field(
        5.0, ge=0.1, le=60, description="The longest opening a connection to the store may take, in seconds."
    )
    read_timeout: float = seconds_field(
        60.0,
        ge=1,
        le=3600,
        description="The longest the store may stay silent during one request, in seconds.",
    )
    max_concurrency: int = Field(
        default=16,
        ge=1,
        le=256,
        description="How many blocking S3 calls run at once (threads); uploads each hold one while they "
        "stream, further requests wait.",
    )
