"""The build command template: split first, then each placeholder filled in inside one argument, so no
value of a Build ever becomes shell syntax or a second argument."""

import shlex

import pytest

from buildfarm.agent.commands import TemplateError, check_template, remote_command, render, values_for
from buildfarm.agent.settings import DEFAULT_COMMAND
from tests.factories import build

VALUES = {
    "platform": "ios",
    "profile": "production",
    "artifact": "/w/out/app.ipa",
    "output_dir": "/w/out",
    "source_dir": "/w/src",
    "build_name": "b",
    "namespace": "ns",
    "attempt": "1",
}


@pytest.mark.parametrize(
    ("template", "values", "want"),
    [
        pytest.param(
            DEFAULT_COMMAND,
            {},
            [
                "eas",
                "build",
                "--local",
                "--non-interactive",
                "--platform",
                "ios",
                "--profile",
                "production",
                "--output",
                "/w/out/app.ipa",
            ],
            id="default",
        ),
        pytest.param(
            "eas build --profile {profile}",
            {"profile": "x; rm -rf / $(id) `id` 'q\" z"},
            ["eas", "build", "--profile", "x; rm -rf / $(id) `id` 'q\" z"],
            id="hostile-value-stays-one-argument",
        ),
        pytest.param(
            "run --out={artifact} '{build_name} in {namespace}'",
            {"build_name": "a b"},
            ["run", "--out=/w/out/app.ipa", "a b in ns"],
            id="placeholders-inside-arguments",
        ),
        pytest.param(
            "echo {profile}",
            {"profile": "{platform}"},
            ["echo", "{platform}"],
            id="a-value-is-not-expanded-again",
        ),
        pytest.param("echo {attempt}", {}, ["echo", "1"], id="attempt"),
    ],
)
def test_render(template: str, values: dict[str, str], want: list[str]) -> None:
    assert render(template, VALUES | values) == want


@pytest.mark.parametrize(
    ("template", "want_error"),
    [
        pytest.param("eas build {secret}", r"\{secret\} is not a placeholder", id="unknown"),
        pytest.param("   ", "the command is empty", id="empty"),
    ],
)
def test_bad_templates(template: str, want_error: str) -> None:
    with pytest.raises(TemplateError, match=want_error):
        check_template(template)


def test_values_of_a_build_default_the_profile_as_eas_does() -> None:
    values = values_for(build("b", attempt=2), source_dir="s", output_dir="o", artifact="o/b.ipa")
    assert (values["profile"], values["attempt"], values["platform"]) == ("production", "2", "ios")


@pytest.mark.parametrize(
    "argv",
    [
        ["eas", "build", "--profile", "x; rm -rf ~"],
        ["echo", "$(id)", "`id`", "it's", 'a "b"', ""],
    ],
)
def test_remote_command_round_trips_through_a_shell(argv: list[str]) -> None:
    assert shlex.split(remote_command(argv)) == argv
