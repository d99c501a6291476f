"""The `buildfarm` command (also installed as `kubectl-buildfarm`, so `kubectl buildfarm ...` works)."""

import click

from buildfarm.cli.crds import crds
from buildfarm.cli.dev import dev
from buildfarm.cli.operator import operator_command
from buildfarm.cli.worker_admin import attach as attach_worker_admin


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Run and operate a buildfarm: a farm of build machines for Expo / React Native apps."""


dev.add_command(crds)
cli.add_command(dev)
cli.add_command(operator_command)
# After any `worker` group is added: attach() joins it, or creates it.
attach_worker_admin(cli)


def main() -> None:
    cli(prog_name="buildfarm")


if __name__ == "__main__":
    main()
