"""`buildfarm dev ...`: tools for developers (the local control plane, CRD generation)."""

import shlex
from pathlib import Path

import click

from buildfarm.dev import controlplane
from buildfarm.dev.binaries import BinaryNotFoundError, repo_root
from buildfarm.dev.crds import CrdInstallError


@click.group()
def dev() -> None:
    """Developer tools: a local control plane and generated manifests."""


_STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=controlplane.DEFAULT_STATE_DIR,
    show_default=True,
    help="Directory holding the control plane's certificates, data, logs and kubeconfig.",
)


@dev.group("controlplane")
def controlplane_group() -> None:
    """A local etcd + kube-apiserver with the buildfarm CRDs installed (no nodes, no controllers)."""


@controlplane_group.command("up")
@_STATE_DIR_OPTION
@click.option(
    "--crds",
    "crd_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of CRD manifests to install.  [default: crds/ of this checkout]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=controlplane.DEFAULT_START_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds to wait for the control plane to become ready.",
)
def up(state_dir: Path, crd_dir: Path | None, timeout: float) -> None:
    """Start the control plane in the background (does nothing if it is already running).

    Prints an `export KUBECONFIG=...` line, so `eval "$(buildfarm dev controlplane up)"` points kubectl at it.
    """
    try:
        result = controlplane.up(
            state_dir, crd_dir=crd_dir or repo_root() / "crds", start_timeout_seconds=timeout
        )
    except (controlplane.ControlPlaneError, BinaryNotFoundError, CrdInstallError) as error:
        raise click.ClickException(str(error)) from error
    status = "already running" if result.already_running else "started"
    click.echo(f"control plane {status} at {result.server}", err=True)
    click.echo(f"kubeconfig: {result.kubeconfig}", err=True)
    click.echo(_export_line(result.kubeconfig))


@controlplane_group.command("down")
@_STATE_DIR_OPTION
def down(state_dir: Path) -> None:
    """Stop the control plane started by `up` (its logs stay in the state directory)."""
    try:
        stopped = controlplane.down(state_dir)
    except controlplane.ControlPlaneError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        "control plane stopped" if stopped else f"no control plane was running in {state_dir}", err=True
    )


@controlplane_group.command("env")
@_STATE_DIR_OPTION
def env(state_dir: Path) -> None:
    """Print `export KUBECONFIG=...` for the running control plane."""
    try:
        server = controlplane.running_server(state_dir)
    except controlplane.ControlPlaneError as error:
        raise click.ClickException(str(error)) from error
    if server is None:
        raise click.ClickException(
            f"no control plane is running in {state_dir}: start one with `buildfarm dev controlplane up`"
        )
    click.echo(_export_line(controlplane.kubeconfig_path(state_dir)))


def _export_line(kubeconfig: Path) -> str:
    return f"export KUBECONFIG={shlex.quote(str(kubeconfig))}"
