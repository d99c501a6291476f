"""`buildfarm cancel` sets spec.cancel; it says so when there is nothing to do."""

import json
from pathlib import Path

from tests.integration.cli.conftest import assigned, drive, finished, one_error, pending, run_cli, running
from tests.support.farm import Farm


def test_cancel_a_running_build(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app")
    drive(farm, "app", pending(), assigned("mac-1", 1), running())

    result = run_cli(kubeconfig, tmp_path, "cancel", "app", "-n", farm.namespace)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"build {farm.namespace}/app: cancel requested (it was Running)\n"
    assert farm.get_build("app").spec.cancel is True

    again = run_cli(kubeconfig, tmp_path, "cancel", "app", "-n", farm.namespace, "-o", "json")
    assert again.returncode == 0, again.stderr
    printed = json.loads(again.stdout)
    assert (printed["metadata"]["name"], printed["spec"]["cancel"]) == ("app", True)


def test_cancel_again_says_it_was_requested(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app", cancel=True)
    result = run_cli(kubeconfig, tmp_path, "cancel", "app", "-n", farm.namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"build {farm.namespace}/app: cancel was already requested (it is not admitted yet)\n"
    )


def test_cancel_a_finished_build_changes_nothing(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("app")
    drive(farm, "app", pending(), assigned("mac-1", 1), finished("Succeeded"))
    result = run_cli(kubeconfig, tmp_path, "cancel", "app", "-n", farm.namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"build {farm.namespace}/app already finished (Succeeded): nothing to cancel\n"
    assert farm.get_build("app").spec.cancel is False


def test_cancel_a_missing_build(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "cancel", "nope", "-n", farm.namespace)
    assert result.returncode == 3
    assert one_error(result).startswith(f"build nope not found in namespace {farm.namespace} ")
