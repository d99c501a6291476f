"""Keeping a build's artifacts: the regular files its output directory holds are moved out of the
workspace (which is deleted) into the agent's artifacts directory and recorded with size and sha256.
Until artifacts are uploaded (a later issue), their location is a file:// URL on the worker."""

import hashlib
import shutil
from pathlib import Path
from typing import Final

from buildfarm.api.builds import Artifact, Build

ARTIFACTS_MAX: Final = 64


def keep(output_dir: Path, store: Path, build: Build) -> list[Artifact]:
    if not output_dir.is_dir():
        return []
    target = store / build.namespace / build.name / str(build.status.attempt)
    kept = []
    for path in sorted(output_dir.iterdir())[:ARTIFACTS_MAX]:
        if path.is_symlink() or not path.is_file() or len(path.name) > 255:
            continue  # a link could point anywhere on the machine
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
