"""Keeping a build's artifacts: the regular files its output directory holds (not links, at most
ARTIFACTS_MAX) are either uploaded to the artifact service (`upload`, when the agent has one: location is
the service's URL) or, without a service, moved out of the workspace (which is deleted) into the agent's
artifacts directory (`keep`: location is a file:// URL on the worker). Either way each is recorded with
its size and sha256."""

import hashlib
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from buildfarm.api.builds import Artifact, Build
from buildfarm.transfer.client import ArtifactClient, ArtifactError

log = logging.getLogger(__name__)

ARTIFACTS_MAX: Final = 64
UPLOAD_TRIES: Final = 4  # a network error or a 5xx is tried again, waiting 1, 2, 4 s


def outputs(output_dir: Path) -> Iterator[Path]:
    if not output_dir.is_dir():
        return
    for path in sorted(output_dir.iterdir())[:ARTIFACTS_MAX]:
        if path.is_symlink() or not path.is_file() or len(path.name) > 255:
            continue  # a link could point anywhere on the machine
        yield path


def upload(output_dir: Path, client: ArtifactClient, build: Build, stop: threading.Event) -> list[Artifact]:
    """Upload each output file; ArtifactError if one cannot be (a refusal at once, the network after
    UPLOAD_TRIES). The sha256 the service computed must be the one computed here."""
    uploaded = []
    for path in outputs(output_dir):
        if path.name.startswith(".") or not path.name.isprintable():
            # The service refuses hidden names and control characters (docs/artifacts-api.md).
            log.info(
                "Not uploading %r of %s/%s: not a name the artifact service takes.",
                path.name,
                build.namespace,
                build.name,
            )
            continue
        local = _sha256(path)
        for attempt in range(UPLOAD_TRIES):
            try:
                stored = client.upload_artifact(
                    build.namespace, build.name, build.status.attempt, path, sha256=local
                )
                break
            except ArtifactError as error:
                if not error.retryable or attempt == UPLOAD_TRIES - 1 or stop.wait(2**attempt):
                    raise
                log.info("Uploading %s of %s/%s again: %s", path.name, build.namespace, build.name, error)
        if stored.sha256 != local:
            raise ArtifactError(
                f"the artifact service stored {path.name} with sha256 {stored.sha256}, but it is {local}"
            )
        uploaded.append(Artifact(name=path.name, size=stored.size, sha256=stored.sha256, location=stored.url))
    return uploaded


def keep(output_dir: Path, store: Path, build: Build) -> list[Artifact]:
    target = store / build.namespace / build.name / str(build.status.attempt)
    kept = []
    for path in outputs(output_dir):
        target.mkdir(parents=True, exist_ok=True)
        dest = target / path.name
        shutil.move(path, dest)
        kept.append(
            Artifact(name=path.name, size=dest.stat().st_size, sha256=_sha256(dest), location=dest.as_uri())
        )
    return kept


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
