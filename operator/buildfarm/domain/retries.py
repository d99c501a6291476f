"""What `buildfarm retry` decides: whether a build may be retried, and the retry's name and body. Pure,
so each case is table-tested; the command only reads, creates and annotates.

A retry is a new Build with the parent's spec (cancel reset), linked both ways like EAS's parent and child
builds: the retry carries the parent's name as a label (`kubectl get builds -l buildfarm.dev/retry-of=P`)
and as annotations with its uid; the parent carries its latest retry's name in an annotation.
"""

from typing import Any, Final

from buildfarm import constants as c
from buildfarm.api.builds import TERMINAL_PHASES, Build
from buildfarm.api.meta import LABEL_VALUE_MAX, NAME_MAX

# Retries of one build are numbered 1..MAX_RETRIES; the name is how concurrent retries find each other.
MAX_RETRIES: Final = 99


def not_final(build: Build) -> str | None:
    """Why `build` cannot be retried yet, in one line; None once it is Succeeded, Failed or Cancelled."""
    phase = build.status.phase
    if phase in TERMINAL_PHASES:
        return None
    state = phase.value if phase is not None else "being admitted"
    where = f"build {build.namespace}/{build.name} is still {state}"
    if build.spec.cancel:
        return f"{where} (cancel requested): wait for it to stop, then retry"
    return f"{where}: cancel it first (`buildfarm cancel {build.name} -n {build.namespace}`) or wait"


def latest_retry(build: Build) -> str | None:
    """The name of the build's latest retry, from its annotation; None if it was never retried."""
    annotations = build.metadata.get("annotations") or {}
    return annotations.get(c.RETRIED_BY) or None


def is_retry_of(candidate: Build, parent: Build) -> bool:
    """Whether `candidate` was made by retrying this very `parent` (not an earlier build of its name)."""
    annotations = candidate.metadata.get("annotations") or {}
    return bool(annotations.get(c.RETRY_OF_UID) == parent.uid)


def retry_name(parent: str, number: int) -> str:
    """`<parent>-retry-<number>`, the parent part cut so the whole stays a valid name of at most 253."""
    if not 1 <= number <= MAX_RETRIES:
        raise ValueError(f"retry number {number} is not between 1 and {MAX_RETRIES}")
    suffix = f"-retry-{number}"
    # A `.` left at the cut would make the suffix a DNS label starting with `-` (`a.-retry-1`: invalid).
    return parent[: NAME_MAX - len(suffix)].rstrip("-.") + suffix


def retry_body(parent: Build, name: str) -> dict[str, Any]:
    """The retry of `parent` named `name`: the same spec with cancel false, the parent's labels, and the
    links to the parent. The label is left out when the parent's name is too long for a label value
    (over 63 characters); the annotations always carry it."""
    labels = {key: value for key, value in parent.labels.items() if key != c.RETRY_OF}
    if len(parent.name) <= LABEL_VALUE_MAX:
        labels[c.RETRY_OF] = parent.name
    spec = parent.spec.model_copy(update={"cancel": False}).to_api()
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.BUILD_KIND,
        "metadata": {
            "name": name,
            "namespace": parent.namespace,
            "labels": labels,
            "annotations": {c.RETRY_OF: parent.name, c.RETRY_OF_UID: parent.uid},
        },
        "spec": spec,
    }
