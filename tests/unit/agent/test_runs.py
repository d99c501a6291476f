"""The statuses the agent writes: reasons, messages and bounds."""

from datetime import UTC, datetime

import pytest

from buildfarm.api.builds import LOG_TAIL_MAX, Artifact, BuildPhase
from buildfarm.domain import runs
from tests.factories import build

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_running_then_succeeded() -> None:
    started = build("b", phase="Running", worker="w", attempt=1)
    artifact = Artifact(name="b.ipa", size=3, sha256="a" * 64, location="file:///x/b.ipa")
    status = runs.succeeded(started, [artifact], "done\n", NOW)
    assert (status.phase, status.reason, status.finished_at, status.log_tail) == (
        BuildPhase.SUCCEEDED,
        "Succeeded",
        NOW,
        "done\n",
    )
    assert status.artifacts == [artifact]
    assert "b.ipa" in status.message


def test_running_from_assigned() -> None:
    status = runs.running(build("b", phase="Assigned", worker="w", attempt=1), NOW)
    assert (status.phase, status.reason, status.started_at) == (BuildPhase.RUNNING, "Started", NOW)


def test_handed_back_keeps_the_attempt_and_counts_the_handback() -> None:
    status = runs.handed_back(build("b", phase="Running", worker="w", attempt=3), "w", NOW)
    assert (status.phase, status.worker_name, status.attempt, status.handbacks, status.reason) == (
        BuildPhase.PENDING,
        "",
        3,
        1,
        "HandedBack",
    )


def test_orphaned_spends_the_attempt() -> None:
    status = runs.orphaned(build("b", phase="Running", worker="w", attempt=2), "w")
    assert (status.phase, status.worker_name, status.handbacks, status.reason) == (
        BuildPhase.PENDING,
        "",
        0,
        "AgentRestarted",
    )


def test_a_final_build_cannot_be_written_again() -> None:
    with pytest.raises(ValueError, match="cannot go from"):
        runs.cancelled(build("b", phase="Succeeded", worker="w", attempt=1), "", NOW)


@pytest.mark.parametrize(
    ("code", "tail", "want"),
    [
        pytest.param(3, "a\nb\n", "The build command exited with code 3. Last lines:\na\nb", id="code"),
        pytest.param(-9, "", "The build command was killed by signal 9.", id="signal"),
        pytest.param(
            1,
            "".join(f"line {i}\n" for i in range(100)),
            "The build command exited with code 1. Last lines:\n"
            + "\n".join(f"line {i}" for i in range(80, 100)),
            id="last-20-lines",
        ),
    ],
)
def test_exit_message(code: int, tail: str, want: str) -> None:
    assert runs.exit_message(code, tail) == want


def test_the_tail_is_bounded_and_starts_at_a_line() -> None:
    text = "".join(f"{i:05d} {'x' * 94}\n" for i in range(1000))  # 100 characters a line
    tail = runs.bound_tail(text)
    assert len(tail) <= LOG_TAIL_MAX
    assert tail.endswith("00999 " + "x" * 94 + "\n")
    assert tail[5] == " "  # a whole line first


def test_the_agents_final_writes_set_the_conditions_users_wait_on() -> None:
    running = build("b", phase="Running", worker="w", attempt=1)
    done = {c.type: c.status for c in runs.succeeded(running, [], "log", NOW).conditions}
    failed = {c.type: c.status for c in runs.failed(running, "BuildFailed", "x", "", NOW).conditions}
    assert (done["Complete"], failed["Failed"]) == ("True", "True")
