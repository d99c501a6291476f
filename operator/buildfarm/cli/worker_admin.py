"""`buildfarm worker add|rotate|remove NAME`: give a Mac its identity in the farm, renew it, take it away.

For the farm's administrator. `add` creates the Worker, the agent's ServiceAccount `worker-NAME` in the
farm namespace bound to the agent roles the Helm chart installs, and writes a kubeconfig for the Mac
with a token of bounded lifetime (TokenRequest API). `rotate` writes a new one before it expires
(`--revoke` also invalidates every earlier token at once). `remove` revokes the identity and deletes the
Worker; the operator requeues the builds it had.

These commands join the `worker` group through `attach(cli)`, which creates the group only if no other
module (cordon/uncordon/drain) did.
"""

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import click
import urllib3

from buildfarm.api.meta import Platform
from buildfarm.api.workers import WorkerSpec
from buildfarm.cli.session import (
    AdminCommand,
    ClusterOptions,
    CommandError,
    NotThere,
    cluster_options,
    exit_codes,
    note,
)
from buildfarm.errors import BuildfarmError, NotFound
from buildfarm.kube import client as kube_client
from buildfarm.kube.worker_access import DEFAULT_AGENT_ROLE, Credentials, Target, WorkerAccess

DEFAULT_FARM_NAMESPACE: Final = "buildfarm-system"
DEFAULT_TOKEN_LIFETIME: Final = "30d"
# Kubernetes refuses TokenRequests under 10 minutes; a year is as long as anyone should trust one file.
MIN_TOKEN_SECONDS: Final = 600
MAX_TOKEN_SECONDS: Final = 366 * 86400
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WORKER_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def attach(cli: click.Group) -> None:
    """Add add/rotate/remove to the `worker` group of `cli`, creating the group if it is not there yet."""
    group = cli.commands.get("worker")
    if not isinstance(group, click.Group):
        group = click.Group("worker", help="Manage the farm's Workers (the build machines).")
        cli.add_command(group)
    for command in (add_command, rotate_command, remove_command):
        group.add_command(command)


def _lifetime(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", value.strip())
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"] if match else -1
    if not MIN_TOKEN_SECONDS <= seconds <= MAX_TOKEN_SECONDS:
        raise click.BadParameter(f"{value!r}: give 10m to 366d, e.g. 30d, 12h or 3600")
    return seconds


def _worker_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    # The ServiceAccount worker-NAME must be a DNS subdomain too (253 characters).
    if len(value) > 245 or not _WORKER_NAME.match(value):
        raise click.BadParameter(f"{value!r} is not a Worker name: lowercase letters, digits, '-' and '.'")
    return value


def _labels(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: give KEY=VALUE")
        labels[key] = value
    return labels


def _common(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--farm-namespace",
                default=lambda: os.environ.get("BUILDFARM_FARM_NAMESPACE") or DEFAULT_FARM_NAMESPACE,
                show_default=f"$BUILDFARM_FARM_NAMESPACE or {DEFAULT_FARM_NAMESPACE}",
                help="The farm namespace (the chart's farmNamespace.name).",
            ),
            click.option(
                "--agent-role",
                default=DEFAULT_AGENT_ROLE,
                show_default=True,
                help="The agent ClusterRole and Role the chart installed (<release>-agent).",
            ),
        ]
    ):
        command = option(command)
    return cluster_options(command)


def _output_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--token-lifetime",
                default=DEFAULT_TOKEN_LIFETIME,
                show_default=True,
                callback=_lifetime,
                help="How long the token is valid (10m to 366d); rotate before it runs out.",
            ),
            click.option(
                "--output-kubeconfig",
                "output",
                type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
                help="Where to write the Mac's kubeconfig ('-': stdout). Default: NAME.kubeconfig.",
            ),
            click.option(
                "--server",
                help="The API server URL the Mac uses, if not the one in your kubeconfig.",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command("add", cls=AdminCommand, epilog=exit_codes())
@click.argument("name", callback=_worker_name)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    type=click.Choice([p.value for p in Platform]),
    help="A platform it builds; repeat for more. Default: ios and android.",
)
@click.option("--capacity", type=click.IntRange(1, 64), default=1, show_default=True, help="Builds at once.")
@click.option(
    "--label", "labels", multiple=True, callback=_labels, metavar="KEY=VALUE", help="A Worker label."
)
@_output_options
@_common
def add_command(
    name: str,
    platforms: tuple[str, ...],
    capacity: int,
    labels: dict[str, str],
    token_lifetime: int,
    output: Path | None,
    server: str | None,
    farm_namespace: str,
    agent_role: str,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Add worker NAME to the farm and write the kubeconfig its agent runs with."""
    spec = WorkerSpec(platforms=[Platform(p) for p in platforms or ("ios", "android")], capacity=capacity)
    target = Target(farm_namespace, agent_role)
    with _access(kubeconfig, context) as access:
        credentials = access.add(name, spec, labels, target, token_lifetime)
    _write(name, credentials, output, server, farm_namespace)


@click.command("rotate", cls=AdminCommand, epilog=exit_codes())
@click.argument("name", callback=_worker_name)
@click.option(
    "--revoke",
    is_flag=True,
    help="Also invalidate every earlier token of NAME at once (its agent stops until it gets the new file).",
)
@_output_options
@_common
def rotate_command(
    name: str,
    revoke: bool,
    token_lifetime: int,
    output: Path | None,
    server: str | None,
    farm_namespace: str,
    agent_role: str,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Write a new kubeconfig for worker NAME's agent (earlier tokens run out unless --revoke)."""
    target = Target(farm_namespace, agent_role)
    with _access(kubeconfig, context) as access:
        credentials = access.rotate(name, target, token_lifetime, revoke=revoke)
    _write(name, credentials, output, server, farm_namespace)


@click.command("remove", cls=AdminCommand, epilog=exit_codes())
@click.argument("name", callback=_worker_name)
@click.option("--keep-worker", is_flag=True, help="Only revoke the agent's access; keep the Worker object.")
@_common
def remove_command(
    name: str,
    keep_worker: bool,
    farm_namespace: str,
    agent_role: str,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Revoke worker NAME's access at once and delete the Worker (its builds are requeued)."""
    target = Target(farm_namespace, agent_role)
    with _access(kubeconfig, context) as access:
        gone = access.remove(name, target, keep_worker=keep_worker)
    click.echo(f"removed worker {name}: deleted {', '.join(gone)}")


@contextmanager
def _access(kubeconfig: Path | None, context: str | None) -> Iterator[WorkerAccess]:
    """The administrator's connection as a WorkerAccess; a refusal becomes one line (exit 1, 3 for an
    object that is not there), as for the other admin commands."""
    options = ClusterOptions(kubeconfig=kubeconfig, context=context)
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    try:
        api_client = kube_client.make_api_client(options, kubeconfig_source="--kubeconfig")
    except kube_client.KubeConfigError as error:
        raise CommandError(str(error)) from None
    with api_client:
        try:
            yield WorkerAccess(api_client, kube_client.request_timeout(options))
        except NotFound as error:
            raise NotThere(error.message) from None
        except BuildfarmError as error:
            raise CommandError(error.message) from None
        except urllib3.exceptions.HTTPError as error:
            raise CommandError(f"the cluster could not be reached: {error}") from None


def _write(name: str, credentials: Credentials, output: Path | None, server: str | None, farm: str) -> None:
    if server:
        credentials = Credentials(**{**credentials.__dict__, "server": server})
    text = credentials.kubeconfig(name)
    path = output or Path(f"{name}.kubeconfig")
    if str(path) == "-":
        sys.stdout.write(text)
        return
    # The file is a credential: readable by its owner only, from the moment it exists.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(path, 0o600)
    note(
        f"wrote {path} for worker {name} (token valid until "
        f"{credentials.expires.strftime('%Y-%m-%d %H:%M UTC')}); on the Mac run:\n"
        f"  buildfarm agent --kubeconfig {path.name} --worker-name {name} --namespace {farm}"
    )
