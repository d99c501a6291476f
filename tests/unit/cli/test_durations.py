"""Table tests for the durations the commands take (`--deadline`)."""

import pytest

from buildfarm.cli.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "want_seconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1h0m5s", 3605),
        ("2m30s", 150),
        (" 45s ", 45),
        ("168h", 7 * 24 * 3600),
    ],
)
def test_parses(text: str, want_seconds: int) -> None:
    assert parse_duration(text) == want_seconds


@pytest.mark.parametrize(
    ("text", "want_error"),
    [
        ("", "'' is not a duration: use e.g. 90s, 30m, 1h30m, or 0"),
        ("5x", "'5x' is not a duration: use e.g. 90s, 30m, 1h30m, or 0"),
        ("90", "'90' is not a duration (a unit is needed: 90s or 90m?): use e.g. 90s, 30m, 1h30m, or 0"),
        ("-5m", "'-5m' is not a duration: use e.g. 90s, 30m, 1h30m, or 0"),
        ("1.5h", "'1.5h' is not a duration: use e.g. 90s, 30m, 1h30m, or 0"),
        ("30m1h", "'30m1h' is not a duration: use e.g. 90s, 30m, 1h30m, or 0"),
        ("1d", "'1d' is not a duration: use e.g. 90s, 30m, 1h30m, or 0"),
        ("169h", "'169h' is longer than a week (168h): use at most 168h"),
    ],
)
def test_refuses_with_one_line(text: str, want_error: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert str(caught.value) == want_error


@pytest.mark.parametrize(
    ("seconds", "want"),
    [(0, "0s"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (3605, "1h5s")],
)
def test_formats_back(seconds: int, want: str) -> None:
    assert format_duration(seconds) == want
    assert parse_duration(want) == seconds
