"""Names shared by every layer: the API group, its kinds, label keys, and the kopf bookkeeping prefix."""

from typing import Final

GROUP: Final = "buildfarm.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

BUILD_KIND: Final = "Build"
BUILD_PLURAL: Final = "builds"
WORKER_KIND: Final = "Worker"
WORKER_PLURAL: Final = "workers"

# Short names avoid `bc`/`build` (OpenShift) and `bd`/`br` (Shipwright BuildRun/Build)
BUILD_SHORT_NAMES: Final = ("bfb",)
WORKER_SHORT_NAMES: Final = ("bfw",)
CATEGORY: Final = "buildfarm"

# The field a worker agent selects on to watch only its own builds.
BUILD_WORKER_FIELD: Final = "status.workerName"

# How `buildfarm retry` links a retry and the build it retries, both ways (see docs/cli.md).
RETRY_OF: Final = f"{GROUP}/retry-of"  # label and annotation of the retry: the parent's name
RETRY_OF_UID: Final = f"{GROUP}/retry-of-uid"  # annotation of the retry: the parent's uid
RETRIED_BY: Final = f"{GROUP}/retried-by"  # annotation of the parent: its latest retry's name

LABEL_PREFIX: Final = "app.kubernetes.io"
MANAGED_BY: Final = "buildfarm-operator"
