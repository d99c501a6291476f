"""Durations typed on the command line: `90s`, `30m`, `1h30m`, `0`; whole seconds, at most a week."""

import re
from typing import Any, Final

import click

MAX_SECONDS: Final = 7 * 24 * 3600
_UNITS: Final = {"h": 3600, "m": 60, "s": 1}
# Hours, minutes, seconds, each at most once and in that order, as Go and kubectl write them.
_DURATION: Final = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
EXAMPLES: Final = "e.g. 90s, 30m, 1h30m, or 0"


class DurationError(ValueError):
    """The text is not a duration; the message is one line saying what to type instead."""


def parse_duration(text: str) -> int:
    """The duration in whole seconds."""
    value = text.strip()
    if value == "0":
        return 0
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        hint = f" (a unit is needed: {value}s or {value}m?)" if value.isdigit() else ""
        raise DurationError(f"{text!r} is not a duration{hint}: use {EXAMPLES}")
    seconds = sum(int(match[unit]) * size for unit, size in _UNITS.items() if match[unit])
    if seconds > MAX_SECONDS:
        raise DurationError(f"{text!r} is longer than a week (168h): use at most 168h")
    return seconds


def format_duration(seconds: int) -> str:
    """`1h30m`, `90s` -> `1m30s`, `0` -> `0s`: how the commands show a duration back."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)


class Duration(click.ParamType[int]):
    """A click parameter type for durations; a bad one is a usage error (exit 2)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except DurationError as error:
            self.fail(str(error), param, ctx)
