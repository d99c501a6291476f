"""How every long-running command (`buildfarm operator`, `buildfarm agent`) refuses to start: one line on
stderr, no traceback; exit code 2 for a wrong setting or flag, 1 for an environment it cannot use."""

from collections.abc import Mapping
from typing import IO, Any, Final, TypeVar

import click
from pydantic_settings import BaseSettings

from buildfarm.settings import SettingsError, validated

EXIT_BAD_SETTINGS: Final = 2
EXIT_ENVIRONMENT: Final = 1

AnySettings = TypeVar("AnySettings", bound=BaseSettings)


class StartupError(click.ClickException):
    """One line `error: ...` on stderr; no usage text, no traceback. Exit code 1: the cluster is unusable."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class BadSettingsError(StartupError):
    """A setting or flag is wrong: exit code 2, like any other usage error."""

    exit_code = EXIT_BAD_SETTINGS


def settings_from(
    model: type[AnySettings], flags: Mapping[str, Any], flag_names: Mapping[str, str]
) -> AnySettings:
    """The settings from the environment and the flags given (None = not given); a bad one becomes a
    BadSettingsError that names it by its flag when a flag set it, else by its environment variable."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return validated(model, **given)
    except SettingsError as error:
        names = {name: flag for name, flag in flag_names.items() if name in given}
        raise BadSettingsError(error.render(names)) from None
