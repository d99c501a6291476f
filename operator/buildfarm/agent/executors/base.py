"""What every executor gets and gives back."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from buildfarm.agent import sources
from buildfarm.agent.logs import BuildLog
from buildfarm.agent.process import Processes
from buildfarm.agent.settings import AgentSettings
from buildfarm.api.builds import Build
from buildfarm.transfer.client import ArtifactClient

CREDENTIALS_DIR = "credentials"


@dataclass(frozen=True)
class Job:
    build: Build
    workspace: Path  # fresh and empty, deleted after the build
    log: BuildLog
    processes: Processes  # runs and stops every command of the build
    transfer: ArtifactClient | None = None  # the artifact service, when the agent is given one

    @property
    def source_dir(self) -> Path:
        return self.workspace / "src"

    @property
    def output_dir(self) -> Path:
        """Every regular file the build leaves here is an artifact."""
        return self.workspace / "out"

    @property
    def credentials_dir(self) -> Path:
        """The build's signing credentials, one file per Secret key (only when spec.credentials is set
        and an artifact service is configured); deleted as soon as the build command ends."""
        return self.workspace / CREDENTIALS_DIR


@dataclass(frozen=True)
class Outcome:
    exit_code: int


class Executor(Protocol):
    def prepare(self) -> None:
        """Once at agent start, before any build: e.g. remove what a dead agent left behind."""

    def execute(self, job: Job) -> Outcome:
        """Fetch the source, run the build, leave its artifacts in job.output_dir. Raises Stopped when
        job.processes is stopped, SourceError when the source cannot be fetched."""


def fetch_source(job: Job, settings: AgentSettings) -> None:
    """What every executor does first: make the output directory and fetch the build's source into the
    job's source directory, within the agent's limits."""
    job.output_dir.mkdir(parents=True, exist_ok=True)
    sources.fetch(
        job.build,
        job.source_dir,
        job.processes,
        job.log,
        allow_file=settings.allow_file_sources,
        max_archive_bytes=settings.max_archive_bytes,
        transfer=job.transfer,
    )
    sources.fetch_credentials(job.build, job.credentials_dir, job.log, job.transfer)
