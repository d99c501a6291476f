"""What the commands that talk to the artifact service share (`submit`, `logs`, `download`): where the
service is (`--artifacts-url`, else BUILDFARM_ARTIFACTS_URL; it does not come from the kubeconfig), the
client signed with the kubeconfig's credentials, progress bars on stderr, and its errors as one line with
an exit code from docs/cli.md."""

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from click._termui_impl import ProgressBar

from buildfarm.cli.session import CommandError, NotThere, Session, UsageProblem
from buildfarm.transfer.client import CA_SETTING, URL_SETTING, ArtifactClient, ArtifactError, check_base_url

F = TypeVar("F", bound=Callable[..., Any])


def artifacts_options(command: F) -> F:
    command = click.option(
        "--artifacts-ca",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=CA_SETTING,
        show_envvar=True,
        help="CA bundle (PEM) of the artifact service's certificate. [default: the system's]",
    )(command)
    return click.option(
        "--artifacts-url",
        metavar="URL",
        envvar=URL_SETTING,
        show_envvar=True,
        help="The artifact service, e.g. https://artifacts.example.com (http only to 127.0.0.1).",
    )(command)


@contextlib.contextmanager
def artifact_client(s: Session, url: str | None, ca: Path | None) -> Iterator[ArtifactClient]:
    """A client of the service at `url`, signed with the session's kubeconfig credentials; its errors
    become one line: exit 3 for a build or file that is not there, else 1."""
    if not url:
        raise UsageProblem(
            f"no artifact service given: set {URL_SETTING} or pass --artifacts-url "
            "(ask the farm's administrator for its URL)"
        )
    try:
        base = check_base_url(url)
    except ValueError as error:
        raise UsageProblem(f"--artifacts-url: {error}") from None
    if ca is not None and not os.access(ca, os.R_OK):
        raise UsageProblem(f"--artifacts-ca: {ca} is not a readable file")
    try:
        client = ArtifactClient(
            base,
            s.credentials,
            ca_file=ca,
            connect_timeout=s.options.connect_timeout,
            read_timeout=max(60.0, s.options.request_timeout),
        )
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot set up the connection to {base}: {error}") from None
    with client:
        try:
            yield client
        except ArtifactError as error:
            raise as_command_error(error) from None


def as_command_error(error: ArtifactError) -> CommandError:
    return NotThere(str(error)) if error.status == 404 else CommandError(str(error))


class Progress:
    """A click progress bar on stderr (shown only on a terminal); call it with byte counts."""

    def __init__(self, label: str, length: int | None) -> None:
        self._bar: ProgressBar[int] = click.progressbar(
            length=length, label=label, file=sys.stderr, show_pos=False, width=30
        )

    def __enter__(self) -> "Progress":
        self._bar.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._bar.__exit__(*args)

    def __call__(self, count: int) -> None:
        self._bar.update(count)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
