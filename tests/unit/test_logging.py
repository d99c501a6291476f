"""At INFO the operator logs one line per decision; kopf's per-event bookkeeping lines go to DEBUG."""

import logging

import pytest

from buildfarm.operator.config import KOPF_OBJECTS_LOGGER, KopfBookkeepingToDebug


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(KOPF_OBJECTS_LOGGER, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("message", "level", "want_level"),
    [
        ("Handler 'watch-builds' succeeded.", logging.INFO, logging.DEBUG),
        ("Creation is processed: 1 succeeded; 0 failed.", logging.INFO, logging.DEBUG),
        ("Handler 'admit' failed temporarily: boom", logging.ERROR, logging.ERROR),
        ("Something else worth saying.", logging.INFO, logging.INFO),
    ],
)
def test_kopf_bookkeeping_is_demoted(message: str, level: int, want_level: int) -> None:
    rec = record(message, level)
    logger = logging.getLogger(KOPF_OBJECTS_LOGGER)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        shown = KopfBookkeepingToDebug().filter(rec)
    finally:
        logger.setLevel(previous)
    assert rec.levelno == want_level
    assert shown is (want_level >= logging.INFO)
