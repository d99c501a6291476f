"""A caller without the permission a command needs is told which one, in one line (exit 1)."""

from pathlib import Path

from tests.integration.cli.conftest import one_error, run_cli
from tests.integration.test_operator_startup import service_account_kubeconfig  # noqa: F401  (a fixture)
from tests.support.farm import Farm


def test_a_missing_permission_names_the_check(
    farm: Farm,
    tmp_path: Path,
    service_account_kubeconfig: tuple[Path, str],  # noqa: F811
) -> None:
    path, _ = service_account_kubeconfig
    farm.build("app")
    result = run_cli(str(path), tmp_path, "cancel", "app", "-n", farm.namespace)
    assert result.returncode == 1
    assert one_error(result) == (
        f"your credentials may not get builds.buildfarm.dev in namespace {farm.namespace}: ask an "
        "administrator for access "
        f"(check with `kubectl auth can-i get builds.buildfarm.dev -n {farm.namespace}`)"
    )
    assert farm.get_build("app").spec.cancel is False
