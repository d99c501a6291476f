"""What every executor gets and gives back."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from buildfarm.agent import sources
from buildfarm.agent.logs import BuildLog
from buildfarm.agent.process import Processes
from buildfarm.agent.settings import AgentSettings
from buildfarm.api.builds import Build


@dataclass(frozen=True)
class Job:
    build: Build
    workspace: Path  # fresh and empty, deleted after the build
    log: BuildLog
    processes: Processes  # runs and stops every command of the build

    @property
    def source_dir(self) -> Path:
        return self.workspace / "src"

    @property
    def output_dir(self) -> Path:
        """Every regular file the build leaves here is an artifact."""
        return self.workspace / "out"


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
        job.build.spec.source,
        job.source_dir,
        job.processes,
        job.log,
        allow_file=settings.allow_file_sources,
        max_archive_bytes=settings.max_archive_bytes,
    )
