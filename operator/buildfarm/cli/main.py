"""The `buildfarm` command (also installed as `kubectl-buildfarm`, so `kubectl buildfarm ...` works)."""

import click

from buildfarm.cli import logformat
from buildfarm.cli.agent import agent_command
from buildfarm.cli.artifacts import artifacts_group
from buildfarm.cli.builds import cancel_command, retry_command
from buildfarm.cli.crds import crds
from buildfarm.cli.dev import dev
from buildfarm.cli.operator import operator_command
from buildfarm.cli.worker_admin import attach as attach_worker_admin
from buildfarm.cli.workers import worker_group
from buildfarm.telemetry.logs import LOG_FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    help=f"text: readable lines; json: one JSON object per line. [env: {logformat.LOG_FORMAT_ENV}; "
    "default: text]",
)
@click.pass_context
def cli(ctx: click.Context, log_format: str | None) -> None:
    """Run and operate a buildfarm: a farm of build machines for Expo / React Native apps."""
    logformat.remember(ctx, log_format)


dev.add_command(crds)
cli.add_command(dev)
cli.add_command(operator_command)
cli.add_command(agent_command)
cli.add_command(artifacts_group)
cli.add_command(retry_command)
cli.add_command(cancel_command)
cli.add_command(worker_group)
# add/rotate/remove join the `worker` group of cordon/uncordon/drain.
attach_worker_admin(cli)


def main() -> None:
    cli(prog_name="buildfarm")


if __name__ == "__main__":
    main()
