"""What the user and admin commands share (`retry`, `cancel`, `worker ...`): how they reach the cluster
(`--kubeconfig`, `--context`, `-n`), how they print objects (`-o json`), and how they fail: one line
`error: ...` on stderr and an exit code from the table in docs/cli.md, never a traceback."""

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import click
import urllib3
import yaml

from buildfarm.api.meta import Resource
from buildfarm.errors import BuildfarmError, NotFound
from buildfarm.kube import client as kube_client
from buildfarm.kube.builds_admin import AdminGateway, default_namespace
from buildfarm.kube.credentials import NO_CREDENTIALS, HttpCredentials, http_credentials

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the cluster could not be reached, or refused the call (RBAC, API error)
EXIT_USAGE: Final = 2  # a wrong flag or argument
EXIT_NOT_FOUND: Final = 3  # the build or worker does not exist
EXIT_REFUSED: Final = 4  # the object's state does not allow it (e.g. the build is still running)
EXIT_BUILD_FAILED: Final = 5  # `submit --wait`, `logs -f --exit-code`: the build ended Failed or Cancelled
EXIT_INTERRUPTED: Final = 130  # Ctrl-C

_MEANINGS: Final = {
    EXIT_OK: "done",
    EXIT_FAILED: "the cluster could not be reached or refused the call (RBAC, API error)",
    EXIT_USAGE: "a wrong flag or argument",
    EXIT_NOT_FOUND: "the build or worker does not exist",
    EXIT_REFUSED: "refused: the object's state does not allow it (the message says why)",
    EXIT_BUILD_FAILED: "the build finished but did not succeed (Failed or Cancelled)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

F = TypeVar("F", bound=Callable[..., Any])


def exit_codes(*extra: int) -> str:
    """The epilog of a command's --help: the exit codes it may return (0, 1, 2, 3 and `extra`)."""
    codes = sorted({EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, *extra})
    lines = "\n".join(f"  {code:<3} {_MEANINGS[code]}" for code in codes)
    return f"\b\nExit codes:\n{lines}"


class CommandError(click.ClickException):
    """One line `error: ...` on stderr, no usage text, no traceback; the class says the exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class UsageProblem(CommandError):
    exit_code = EXIT_USAGE


class NotThere(CommandError):
    exit_code = EXIT_NOT_FOUND


class Refused(CommandError):
    exit_code = EXIT_REFUSED


class BuildFailed(CommandError):
    exit_code = EXIT_BUILD_FAILED


class Interrupted(CommandError):
    exit_code = EXIT_INTERRUPTED


class AdminCommand(click.Command):
    """A command whose usage errors (a missing argument, a bad `--deadline`) are one line, exit 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise UsageProblem(_usage_line(error)) from None


class AdminGroup(click.Group):
    command_class = AdminCommand


def _usage_line(error: click.UsageError) -> str:
    if (
        isinstance(error, click.BadParameter)
        and not isinstance(error, click.MissingParameter)
        and error.param is not None
        and error.param.opts
    ):
        return f"{max(error.param.opts, key=len)}: {error.message}"
    hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
    return f"{error.format_message().rstrip('.')}{hint}"


@dataclass(frozen=True)
class ClusterOptions:
    """Where the commands connect: what kube.client needs (kubeconfig, context, timeouts)."""

    kubeconfig: Path | None = None
    context: str | None = None
    connect_timeout: float = 5.0
    request_timeout: float = 10.0


def cluster_options(command: F) -> F:
    """`--kubeconfig` and `--context`, resolved as for `buildfarm operator` and kubectl."""
    command = click.option(
        "--context", metavar="NAME", help="The kubeconfig context. [default: the current context]"
    )(command)
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The kubeconfig file. [default: $KUBECONFIG, the pod's service account in a cluster, "
        "~/.kube/config]",
    )(command)


def namespace_option(command: F) -> F:
    return click.option(
        "-n",
        "--namespace",
        metavar="NAMESPACE",
        help="The build's namespace. [default: the kubeconfig context's, else default]",
    )(command)


def output_option(command: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["json"]),
        default=None,
        help="Print the object as JSON instead of a line of text.",
    )(command)


@dataclass(frozen=True)
class Session:
    admin: AdminGateway
    options: ClusterOptions
    credentials: HttpCredentials = NO_CREDENTIALS  # the kubeconfig's, for the artifact service

    def namespace(self, given: str | None) -> str:
        return given or default_namespace(self.options)


@contextmanager
def session(kubeconfig: Path | None, context: str | None) -> Iterator[Session]:
    """A connection to the cluster; an error a command did not handle itself becomes one line, exit 1
    (3 for an object that is not there)."""
    options = ClusterOptions(kubeconfig=kubeconfig, context=context)
    # A kubeconfig with insecure-skip-tls-verify asked for it; urllib3 would warn on every single call.
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    try:
        api_client = kube_client.make_api_client(options, kubeconfig_source="--kubeconfig")
    except kube_client.KubeConfigError as error:
        raise CommandError(str(error)) from None
    with api_client:
        try:
            yield Session(
                AdminGateway(api_client, kube_client.request_timeout(options)),
                options,
                http_credentials(api_client),
            )
        except NotFound as error:
            raise NotThere(error.message) from None
        except BuildfarmError as error:
            raise CommandError(error.message) from None


def emit_json(obj: Resource | dict[str, Any]) -> None:
    body = obj.to_api() if isinstance(obj, Resource) else obj
    click.echo(json.dumps(body, indent=2, sort_keys=False))


def emit(obj: Resource | dict[str, Any] | list[Any], output: str) -> None:
    """An object (or a kubectl-style List of them) as `json` or `yaml`."""
    if isinstance(obj, list):
        items = [item.to_api() if isinstance(item, Resource) else item for item in obj]
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "List", "items": items}
    else:
        body = obj.to_api() if isinstance(obj, Resource) else obj
    if output == "yaml":
        click.echo(yaml.safe_dump(body, sort_keys=False), nl=False)
    else:
        click.echo(json.dumps(body, indent=2, sort_keys=False))


def format_option(command: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["json", "yaml"]),
        default=None,
        help="Print the object(s) as JSON or YAML instead of text.",
    )(command)


def note(text: str) -> None:
    """Progress for the person watching, on stderr, so stdout stays the command's result."""
    click.echo(text, err=True)
