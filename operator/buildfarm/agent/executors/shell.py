"""The shell executor: the build command runs on this machine, in the build's fresh workspace, in its own
process group, with the explicit environment the Run gives it."""

from buildfarm.agent import commands, sources
from buildfarm.agent.executors.base import Job, Outcome
from buildfarm.agent.settings import AgentSettings


class ShellExecutor:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        commands.check_template(settings.command)

    def prepare(self) -> None:
        return None

    def execute(self, job: Job) -> Outcome:
        job.output_dir.mkdir(parents=True, exist_ok=True)
        sources.fetch(
            job.build.spec.source,
            job.source_dir,
            job.processes,
            job.log,
            allow_file=self.settings.allow_file_sources,
            max_archive_bytes=self.settings.max_archive_bytes,
        )
        artifact = job.output_dir / commands.artifact_name(job.build)
        argv = commands.render(
            self.settings.command,
            commands.values_for(
                job.build,
                source_dir=str(job.source_dir),
                output_dir=str(job.output_dir),
                artifact=str(artifact),
            ),
        )
        job.log.say(f"Running {commands.remote_command(argv)}")
        code = job.processes.run(argv, cwd=job.source_dir)
        job.log.say(f"The build command exited with code {code}.")
        return Outcome(code)
