"""The drain's requeue is a conditional write: when someone wrote the build after the drain read it, the
API server answers 409, and the drain reads it again and re-checks instead of overwriting. The race is
made exact by handing the drain a copy read before the other write."""

from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from buildfarm.cli.drain import Drain, Left, Requeued
from buildfarm.kube.builds_admin import AdminGateway
from tests.integration.cli.conftest import assigned, drive, finished, pending, requeued, running, write_status
from tests.support.farm import Farm

TIMEOUT = (5.0, 10.0)


def log_written(farm: Farm, name: str, worker: str) -> None:
    write_status(farm, name, logTail="step 3 of 9\n")


def finished_meanwhile(farm: Farm, name: str, worker: str) -> None:
    write_status(farm, name, **finished("Succeeded"))


def reassigned_meanwhile(farm: Farm, name: str, worker: str) -> None:
    drive(farm, name, requeued(), assigned("another-mac", 2))


@pytest.mark.parametrize(
    ("name", "racing_write", "want_phase", "want_worker", "want_handbacks", "want_result"),
    [
        ("a log line: re-read, still on the worker, requeued", log_written, "Pending", "", 1, Requeued),
        ("finished: re-read, left alone", finished_meanwhile, "Succeeded", "mac", 0, Left),
        ("requeued and reassigned: left alone", reassigned_meanwhile, "Assigned", "another-mac", 0, Left),
    ],
)
def test_a_racing_write_makes_the_drain_re_read_and_re_check(
    farm: Farm,
    api_client: ApiClient,
    tmp_path: Path,
    name: str,
    racing_write: Callable[[Farm, str, str], None],
    want_phase: str,
    want_worker: str,
    want_handbacks: int,
    want_result: type,
) -> None:
    mac = farm.worker("mac")
    farm.build("b")
    drive(farm, "b", pending(), assigned(mac, 1), running())
    admin = AdminGateway(api_client, TIMEOUT)
    results: list[Requeued | Left] = []
    drain = Drain(admin, mac, message="drained by a test", on_result=results.append)

    stale = farm.get_build("b")
    racing_write(farm, "b", mac)
    drain.requeue(stale)

    build = farm.get_build("b")
    want_worker = mac if want_worker == "mac" else want_worker
    assert (build.status.phase, build.status.worker_name, build.status.handbacks) == (
        want_phase,
        want_worker,
        want_handbacks,
    )
    [result] = results
    assert isinstance(result, want_result)
    if isinstance(result, Requeued):
        assert (result.was, result.attempt) == ("Running", 1)
        assert build.status.log_tail == "step 3 of 9\n", "the other writer's change was kept, not overwritten"
        assert build.status.reason == "Drained"


def test_a_build_that_finishes_between_the_announcement_and_the_wait_is_reported(
    farm: Farm, api_client: ApiClient
) -> None:
    """`drain` says which builds it waits for, then waits: a build that finishes in between was reported
    as never there ("no builds were on it")."""
    mac = farm.worker("mac")
    farm.build("r")
    drive(farm, "r", pending(), assigned(mac, 1), running())
    drain = Drain(AdminGateway(api_client, TIMEOUT), mac, message="drained by a test")

    assert [b.name for b in drain.active()] == ["r"]  # what the user is told it waits for
    write_status(farm, "r", **finished("Succeeded"))
    assert drain.wait(5) == []

    assert [(left.build[1], left.phase) for left in drain.report.left] == [("r", "Succeeded")]
    assert drain.report.summary() == f"drained worker {mac}: 0 requeued, 1 finished or left while waiting"
