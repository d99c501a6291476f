"""The artifact service's metrics, defined here for it to record (the service itself lives elsewhere).

Usage: `RECEIVED_BYTES.labels("artifact").inc(size)`;
`with REQUEST_SECONDS.labels("upload_artifact", "201").time(): ...` or `.observe(seconds)` once the code
is known; `REFUSALS.labels("Forbidden").inc()`; `STORAGE_ERRORS.labels("s3", "put").inc()`.
"""

from typing import Final

from buildfarm.telemetry.catalog import TRANSFER_BUCKETS, counter, histogram

# Label values, so callers and dashboards agree.
KINDS: Final = ("source", "artifact", "log")
OPERATIONS: Final = (
    "upload_source",
    "download_source",
    "upload_artifact",
    "download_artifact",
    "append_log",
    "read_log",
    "credentials",
)
REFUSAL_REASONS: Final = (
    "Unauthenticated",
    "Forbidden",
    "StaleAttempt",
    "TooLarge",
    "BadName",
    "DigestMismatch",
)

RECEIVED_BYTES: Final = counter(
    "artifacts",
    "buildfarm_artifacts_received_bytes_total",
    "Bytes stored, by kind: source, artifact, log.",
    ("kind",),
)
SENT_BYTES: Final = counter(
    "artifacts", "buildfarm_artifacts_sent_bytes_total", "Bytes served, by kind.", ("kind",)
)
REQUEST_SECONDS: Final = histogram(
    "artifacts",
    "buildfarm_artifacts_request_duration_seconds",
    "Requests to the artifact service, by operation and HTTP status code.",
    TRANSFER_BUCKETS,
    ("operation", "code"),
)
REFUSALS: Final = counter(
    "artifacts",
    "buildfarm_artifacts_refusals_total",
    "Requests refused, by reason: " + ", ".join(REFUSAL_REASONS) + ".",
    ("reason",),
)
STORAGE_ERRORS: Final = counter(
    "artifacts",
    "buildfarm_artifacts_storage_errors_total",
    "Errors from the storage backend (filesystem, s3), by operation.",
    ("backend", "operation"),
)
