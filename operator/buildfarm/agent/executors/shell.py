"""The shell executor: the build command runs on this machine, in the build's fresh workspace, in its own
process group, with the explicit environment the Run gives it."""

from buildfarm.agent import commands
from buildfarm.agent.executors.base import Job, Outcome, fetch_source
from buildfarm.agent.settings import AgentSettings


class ShellExecutor:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        commands.check_template(settings.command)

    def prepare(self) -> None:
        return None

    def execute(self, job: Job) -> Outcome:
        fetch_source(job, self.settings)
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
