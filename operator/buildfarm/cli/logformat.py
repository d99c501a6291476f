"""`buildfarm --log-format text|json` (or BUILDFARM_LOG_FORMAT), for every command: the root command
resolves it once, and the commands that log (operator, agent) read it from the click context."""

import os
from typing import Final

import click

from buildfarm.cli.errors import BadSettingsError
from buildfarm.telemetry.logs import LOG_FORMATS

LOG_FORMAT_ENV: Final = "BUILDFARM_LOG_FORMAT"
_META_KEY: Final = "buildfarm.log_format"


def resolve(flag: str | None) -> str:
    """The flag, else the variable, else text; a bad variable is one line (exit 2)."""
    if flag:
        return flag
    value = os.environ.get(LOG_FORMAT_ENV, "").strip()
    if not value:
        return "text"
    if value.lower() not in LOG_FORMATS:
        raise BadSettingsError(f"{LOG_FORMAT_ENV}: must be {' or '.join(LOG_FORMATS)} (got {value})")
    return value.lower()


def remember(ctx: click.Context, flag: str | None) -> None:
    ctx.meta[_META_KEY] = resolve(flag)


def chosen() -> str:
    """The log format of this invocation (a command run without the root command reads the variable)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and _META_KEY in ctx.meta:
        return str(ctx.meta[_META_KEY])
    return resolve(None)
