"""Names that go into storage keys: what is refused and what keys look like."""

import pytest

from buildfarm.artifacts import keys


@pytest.mark.parametrize(
    "name",
    ["", "..", ".", ".hidden", "a/b", "a\\b", "/abs", "nul\x00", "tab\t", "del\x7f", "x" * 256, "é" * 128],
)
def test_bad_file_names(name: str) -> None:
    with pytest.raises(keys.BadName):
        keys.file_name(name)


@pytest.mark.parametrize("name", ["app.apk", "App Store.ipa", "build-1.2.3+4.aab", "日本.ipa", "x" * 255])
def test_good_file_names(name: str) -> None:
    assert keys.file_name(name) == name


def test_keys_follow_the_layout() -> None:
    sha = "a" * 64
    assert keys.source_key("ns", sha) == f"sources/ns/{sha}/source.tar.gz"
    assert keys.artifact_key("ns", "b.1", "u-1", 2, "app.ipa") == "builds/ns/b.1/u-1/2/artifacts/app.ipa"
    assert keys.log_key("ns", "b", "u-1", 1) == "builds/ns/b/u-1/1/log"


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (keys.namespace, "Upper"),
        (keys.namespace, "a.b"),
        (keys.object_name, "../x"),
        (keys.sha256, "A" * 64),
        (keys.sha256, "a" * 63),
        (keys.attempt, "0"),
        (keys.attempt, "-1"),
        (keys.attempt, "101"),
        (keys.attempt, "1e3"),
        (keys.uid, "../x"),
    ],
)
def test_bad_key_parts(check: object, value: str) -> None:
    with pytest.raises(keys.BadName):
        check(value)  # type: ignore[operator]
