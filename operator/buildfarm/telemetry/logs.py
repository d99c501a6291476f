"""Log formats for every command: `text` (as before: one readable line) or `json` (one JSON object per
line: time, level, logger, message, and the fields of the build or worker the line is about).

Fields come from, in increasing precedence: the process (`configure(fields=...)`, e.g. the agent's
worker), the context (`context(...)`, e.g. a build run's thread), kopf's per-object loggers (their
`k8s_ref`), and the call itself (`log.info(..., extra=about_build(build))`). Only these fields are written:
nothing else a record carries (kopf's settings, arbitrary extras) reaches the output.
"""

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from buildfarm.api.builds import Build

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[str, ...]] = get_args(LogFormat)
FIELDS: Final = "buildfarm"  # the `extra` key (and record attribute) that holds a line's fields
_context: ContextVar[Mapping[str, Any]] = ContextVar("buildfarm_log_fields", default={})  # noqa: B039


def build_fields(build: Build) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "namespace": build.namespace,
        "name": build.name,
        "attempt": build.status.attempt,
    }
    if build.status.worker_name:
        fields["worker"] = build.status.worker_name
    return fields


def about_build(build: Build) -> dict[str, Any]:
    """`extra=` for a line about a build: its namespace, name, attempt (and worker, once assigned)."""
    return {FIELDS: build_fields(build)}


def about(**fields: Any) -> dict[str, Any]:
    """`extra=` for a line about anything else, e.g. `about(worker=name)`."""
    return {FIELDS: fields}


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Every line logged in this block (in this thread or task) carries `fields`."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class Fields(logging.Filter):
    """Gathers a record's fields (see the module docstring) into its FIELDS attribute."""

    def __init__(self, static: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def filter(self, record: logging.LogRecord) -> bool:
        own = getattr(record, FIELDS, None)
        own = own if isinstance(own, dict) else {}
        setattr(record, FIELDS, {**self.static, **_context.get(), **_kopf_fields(record), **own})
        return True


def _kopf_fields(record: logging.LogRecord) -> dict[str, Any]:
    """kopf's per-object loggers carry the object as `k8s_ref` (kind, namespace, name)."""
    ref = getattr(record, "k8s_ref", None)
    if not isinstance(ref, dict):
        return {}
    if ref.get("kind") == "Worker":
        return {"worker": ref.get("name")}
    fields = {"namespace": ref.get("namespace"), "name": ref.get("name")}
    return {key: value for key, value in fields.items() if value}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            line |= {key: value for key, value in fields.items() if key not in line}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def install(handler: logging.Handler, log_format: str, fields: Mapping[str, Any] | None = None) -> None:
    """Make `handler` write `log_format` (text keeps the handler's own formatter) with the fields."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    for old in [f for f in handler.filters if isinstance(f, Fields)]:
        handler.removeFilter(old)
    handler.addFilter(Fields(fields))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())


def configure(
    log_format: str, *, level: int, text_format: str, fields: Mapping[str, Any] | None = None
) -> logging.Handler:
    """One handler on stderr for the root logger, in `log_format`."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(text_format))
    install(handler, log_format, fields)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
