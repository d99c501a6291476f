"""The json log format: one JSON object per line with time, level, logger and message, and the fields
of the build or worker a line is about, from the call, the context, kopf's object loggers or the process."""

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from buildfarm.telemetry import logs
from tests.factories import build


@pytest.fixture
def output() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.install(handler, "json", {"worker": "mac-1"})
    logger = logging.getLogger("buildfarm.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_object_with_the_fields(output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = output
    assigned = build("app-1", namespace="team-a", phase="Assigned", worker="mac-2", attempt=2)
    logger.info("Assigned build %s", assigned.name, extra=logs.about_build(assigned))
    logger.warning("Worker is not Ready", extra=logs.about(worker="linux-1"))
    with logs.context(namespace="team-b", name="app-2", attempt=1):
        logger.debug("Started")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("Failed\nunexpectedly")

    first, second, third, fourth = lines(stream)
    assert first["level"] == "INFO"
    assert first["logger"] == "buildfarm.test.logs"
    assert first["message"] == "Assigned build app-1"
    assert first["time"].endswith("+00:00")
    assert {k: first[k] for k in ("namespace", "name", "attempt", "worker")} == {
        "namespace": "team-a",
        "name": "app-1",
        "attempt": 2,
        "worker": "mac-2",  # the call's worker wins over the process's
    }
    assert (second["level"], second["worker"]) == ("WARNING", "linux-1")
    assert {k: third[k] for k in ("namespace", "name", "attempt", "worker")} == {
        "namespace": "team-b",
        "name": "app-2",
        "attempt": 1,
        "worker": "mac-1",
    }
    assert fourth["message"] == "Failed\nunexpectedly"
    assert "RuntimeError: boom" in fourth["exception"]


def test_the_context_is_per_thread(output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = output
    with logs.context(name="mine"):
        other = threading.Thread(target=lambda: logger.info("elsewhere"))
        other.start()
        other.join()
        logger.info("here")
    elsewhere, here = lines(stream)
    assert "name" not in elsewhere
    assert here["name"] == "mine"


def test_kopf_object_lines_carry_their_object(output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = output
    ref = {"apiVersion": "buildfarm.dev/v1alpha1", "kind": "Build", "name": "b", "namespace": "n", "uid": "u"}
    logger.info("Handler 'admit' succeeded.", extra={"k8s_ref": ref, "settings": object()})
    logger.info("Worker event", extra={"k8s_ref": {"kind": "Worker", "name": "mac-3"}})
    build_line, worker_line = lines(stream)
    assert (build_line["namespace"], build_line["name"]) == ("n", "b")
    assert "settings" not in build_line
    assert "k8s_ref" not in build_line
    assert worker_line["worker"] == "mac-3"


def test_text_keeps_the_handlers_format() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logs.install(handler, "text")
    handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None))
    assert stream.getvalue() == "INFO plain\n"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of text, json"):
        logs.install(logging.StreamHandler(io.StringIO()), "xml")
